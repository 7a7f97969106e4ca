"""Where a distilled mini FLUX drifts from its teacher, and what that does to 8-step reconstruction.

    python benchmarks/mini_student_drift.py STUDENT_FOLDER TEACHER_FOLDER

Prints the mean squared difference between the student's velocity at guidance 1 and the teacher's
conditional velocity on interpolants x_t = (1 - t) x + t n of 24 held-out renders, for t from 0 to 1;
then FireFlow 8-step reconstruction PSNR of each render, and the worst render again at more steps
(a broken flow fails at every step count; a stiff one recovers). About a minute on 2 CPU cores.
"""

import sys

import numpy as np
import torch

from fireflow_edu.editing import reconstruct
from fireflow_edu.flux.latents import latent_image_ids
from fireflow_edu.mini.model import load_mini_pipeline
from fireflow_edu.mini.scenes import SIZE, VALIDATION_SEEDS, random_scene
from fireflow_edu.mini.train import call, encode, scene_batch

student, teacher = (load_mini_pipeline(path) for path in sys.argv[1:3])
seeds = VALIDATION_SEEDS[10_000:10_024]
x, captions = scene_batch(teacher, seeds)
ids = latent_image_ids(teacher, SIZE, SIZE)
noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    text = encode(teacher, captions)
    for t in (0.0, 0.01, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0):
        x_t, times = (1 - t) * x + t * noise, torch.full((len(x),), t)
        gap = call(student.transformer, x_t, times, text, ids, torch.ones(len(x))) - call(teacher.transformer, x_t, times, text, ids)
        print(f"t = {t:.2f}: mean squared student - teacher velocity {gap.pow(2).mean():.4f}")
scenes = [random_scene(int(seed)) for seed in seeds]
psnr = [min(reconstruct(student, s.render(), s.caption, steps=8).metrics["psnr"], 100.0) for s in scenes]
print("FireFlow 8 steps, PSNR per render:", " ".join(f"{p:.1f}" for p in psnr), f"(mean {np.mean(psnr):.2f})")
worst = scenes[int(np.argmin(psnr))]
for method, steps in (("fireflow", 8), ("fireflow", 30), ("midpoint", 60)):
    result = reconstruct(student, worst.render(), worst.caption, steps=steps, method=method)
    print(f"worst render ({worst.caption}), {method} {steps} steps: {result.metrics['psnr']:.2f} dB")
