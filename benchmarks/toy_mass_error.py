# Issue 10: which 1-RF training change reduces the learned flow's mode-mass error (60k samples, nearest target
# mode)? python benchmarks/toy_mass_error.py (2-core CPU, about 45 min alone; output in toy_mass_error.log).
import copy, time, torch
from fireflow_edu.toy.mixtures import default_source, default_target
from fireflow_edu.toy.model import VelocityMLP, rectified_flow_loss
from fireflow_edu.solvers import integrate
from fireflow_edu.schedules import uniform
torch.set_num_threads(2)
src, tgt = default_source(), default_target()
def train(width, batch, lr, iters, ema, seed):
    torch.manual_seed(seed); model = VelocityMLP(2, width); g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr); sch = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iters)
    avg = copy.deepcopy(model).requires_grad_(False) if ema else None
    for i in range(iters):
        loss = rectified_flow_loss(model, src.sample(batch, g), tgt.sample(batch, g), g)
        opt.zero_grad(); loss.backward(); opt.step(); sch.step()
        if avg is not None:
            d = min(ema, (1 + i) / (10 + i))
            with torch.no_grad():
                for p, q in zip(avg.parameters(), model.parameters()): p.lerp_(q, 1 - d)
    return (avg or model).eval().requires_grad_(False)
@torch.no_grad()
def mass_error(model):
    x = integrate(model, src.sample(60000, torch.Generator().manual_seed(99), stratified=True), uniform(100), "midpoint").x
    m = torch.bincount(torch.cdist(x, tgt.means).argmin(1), minlength=3).float() / 60000
    return (m - 1/3).abs().max().item(), [round(v, 4) for v in m.tolist()]
t0 = time.time()
for name, kw in [("base 2k", dict(width=100, batch=2048, lr=5e-3, iters=2000, ema=0)),
                 ("base 10k", dict(width=100, batch=2048, lr=5e-3, iters=10000, ema=0)),
                 ("ema .999 10k", dict(width=100, batch=2048, lr=5e-3, iters=10000, ema=0.999)),
                 ("batch 8192 10k", dict(width=100, batch=8192, lr=5e-3, iters=10000, ema=0)),
                 ("width 256 10k", dict(width=256, batch=2048, lr=5e-3, iters=10000, ema=0)),
                 ("lr 1e-3 10k", dict(width=100, batch=2048, lr=1e-3, iters=10000, ema=0)),
                 ("batch 8192 2.5k", dict(width=100, batch=8192, lr=5e-3, iters=2500, ema=0)),
                 ("batch 16384 1.25k", dict(width=100, batch=16384, lr=5e-3, iters=1250, ema=0))]:
    for seed in (0, 1, 2):
        err, m = mass_error(train(seed=seed, **kw))
        print(f"{name:<16} seed {seed}: max mass error {err:.4f} masses {m}  t={time.time()-t0:.0f}s", flush=True)
