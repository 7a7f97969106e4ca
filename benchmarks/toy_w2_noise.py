# Issue 10: is full-mode W2 > fast-mode W2 a training effect or noise-sample luck? (python benchmarks/toy_w2_noise.py;
# 2-core CPU, about 13 min; output in toy_w2_noise.log). W2 on 2000 samples per noise draw, max mode-mass error
# per draw, mode masses from 60k samples, and two floors: stratified vs stratified, i.i.d. vs stratified.
import time, torch
from fireflow_edu.toy.experiment import train_toy_flows
from fireflow_edu.toy.metrics import w2_distance
from fireflow_edu.solvers import integrate
from fireflow_edu.schedules import uniform
t0=time.time()
for iters in (2000, 10000):
    for seed in (0, 1):
        flows = train_toy_flows(iters, 10000, seed=seed, progress=False)
        means = flows.target.means
        for name, model in (("1rf", flows.rf1), ("2rf", flows.rf2)):
            w2s, imb = [], []
            for s in range(4):
                g = torch.Generator().manual_seed(1000 + s)
                xn = flows.source.sample(2000, g, stratified=True)
                tgt = flows.target.sample(2000, g, stratified=True)
                x = integrate(model, xn, uniform(100), "midpoint").x
                w2s.append(w2_distance(x, tgt))
                lab = torch.cdist(x, means).argmin(1)
                imb.append((torch.bincount(lab, minlength=3).float() / 2000 - 1/3).abs().max().item())
            # mode mass with many samples (no W2): how balanced is the map itself?
            g = torch.Generator().manual_seed(99)
            xn = flows.source.sample(60000, g, stratified=True)
            x = integrate(model, xn, uniform(100), "midpoint").x
            mass = (torch.bincount(torch.cdist(x, means).argmin(1), minlength=3).float() / 60000).tolist()
            print(f"iters {iters} seed {seed} {name}: W2 {['%.2f'%w for w in w2s]} maximb {['%.4f'%i for i in imb]} mass60k {['%.4f'%m for m in mass]} t={time.time()-t0:.0f}s", flush=True)
g = torch.Generator().manual_seed(5)
print("floor stratified:", [round(w2_distance(flows.target.sample(2000, g, stratified=True), flows.target.sample(2000, g, stratified=True)),3) for _ in range(3)])
print("floor iid:", [round(w2_distance(flows.target.sample(2000, g), flows.target.sample(2000, g, stratified=True)),3) for _ in range(3)])
