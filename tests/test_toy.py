import json
import math

import pytest
import torch

from fireflow_edu.analysis import rmse
from fireflow_edu.cli import main
from fireflow_edu.toy.experiment import compare_solvers, straightness_report
from fireflow_edu.toy.metrics import precision_recall, w2_distance
from fireflow_edu.toy.mixtures import GaussianMixture, default_source, default_target


def test_default_mixtures_match_liu_setup():
    r = 10 * math.sqrt(3) / 2
    torch.testing.assert_close(default_source().means, torch.tensor([[r, 5], [-r, 5], [0, -r]]))
    torch.testing.assert_close(default_target().means, torch.tensor([[r, -5], [-r, -5], [0, r]]))
    x = default_target().sample(30_000, torch.Generator().manual_seed(0), stratified=True)
    means = default_target().means
    assert x.mean(0).tolist() == pytest.approx(means.mean(0).tolist(), abs=0.02)
    assert x.var(0).tolist() == pytest.approx((0.3 + means.var(0, unbiased=False)).tolist(), rel=0.02)


def test_log_prob_is_a_normalised_density():
    mixture = GaussianMixture(torch.tensor([[0.0, 0.0], [2.0, 1.0]]), variance=0.5, weights=[0.25, 0.75])
    axis = torch.linspace(-6, 8, 701)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    cell = float(axis[1] - axis[0]) ** 2
    assert float(mixture.log_prob(grid).exp().sum() * cell) == pytest.approx(1.0, abs=1e-3)
    single = GaussianMixture(torch.zeros(1, 2), variance=2.0)
    assert float(single.log_prob(torch.zeros(1, 2))) == pytest.approx(-math.log(2 * math.pi * 2.0))


def test_stratified_sampling_fixes_component_counts():
    mixture = default_target()
    x = mixture.sample(1000, torch.Generator().manual_seed(1), stratified=True)
    counts = torch.bincount(torch.cdist(x, mixture.means).argmin(1)).tolist()
    assert sorted(counts) == [333, 333, 334]


def test_bad_mixtures_raise():
    with pytest.raises(ValueError, match="weights"):
        GaussianMixture(torch.zeros(2, 2), weights=[0.5, 0.6])
    with pytest.raises(ValueError, match="variance"):
        GaussianMixture(torch.zeros(2, 2), variance=0.0)


def test_w2_distance_exact_cases():
    a = torch.randn(200, 2)
    assert w2_distance(a, a[torch.randperm(200)]) == pytest.approx(0.0, abs=1e-6)
    assert w2_distance(a, a + torch.tensor([3.0, 4.0])) == pytest.approx(5.0, abs=1e-4)
    with pytest.raises(ValueError, match="at most 2000"):
        w2_distance(torch.zeros(2001, 2), torch.zeros(2001, 2))


def test_precision_recall_exact_cases():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(1000, 2, generator=g)
    assert precision_recall(real, real) == {"precision": 1.0, "recall": 1.0}
    strays = real.clone()
    strays[:100] += 50.0  # a tenth of the samples land far from every real point
    result = precision_recall(strays, real)
    assert result["precision"] == pytest.approx(0.9) and result["recall"] < 1.0
    assert precision_recall(real + 100.0, real) == {"precision": 0.0, "recall": 0.0}
    with pytest.raises(ValueError, match="same d"):
        precision_recall(real, torch.zeros(10, 3))


def test_reflow_straightens_at_least_tenfold(toy_flows):
    s = straightness_report(toy_flows)
    print(s)
    assert s["2-RF"] * 10 <= s["1-RF"]


def test_fireflow_matches_target_no_worse_than_euler_at_20_nfe(toy_flows):
    result = compare_solvers(toy_flows.rf2, toy_flows.source, toy_flows.target, nfe=20, num_samples=1000,
                             mass_samples=10_000, reference_steps=250, progress=False)
    rows = result["methods"]
    for method, row in rows.items():
        print(f"{method}: steps {row['steps']} NFE {row['nfe']} W2 {row['w2_to_target']:.3f} "
              f"RMSE to exact ODE {row['rmse_to_reference']:.4f}")
    print("W2 floor", result["w2_floor"])
    assert [rows[m]["nfe"] for m in ("euler", "midpoint", "fireflow")] == [20, 20, 20]
    assert rows["fireflow"]["w2_to_target"] <= rows["euler"]["w2_to_target"]
    # The solver error alone (against a 250-step midpoint solution of the same ODE) orders cleanly.
    assert rows["fireflow"]["rmse_to_reference"] < rows["midpoint"]["rmse_to_reference"] < rows["euler"]["rmse_to_reference"]
    # the returned reference is the one measured against, so a notebook can measure more budgets against it
    assert rmse(result["trajectories"]["fireflow"][-1], result["reference"]) == rows["fireflow"]["rmse_to_reference"]
    assert result["w2_floor"] < rows["fireflow"]["w2_to_target"]


@pytest.mark.slow
def test_demo_command_writes_figure_and_metrics(tmp_path, capsys):
    main(["demo", "--out", str(tmp_path), "--iterations", "50", "--reflow-pairs", "500",
          "--samples", "300", "--no-progress"])
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert (tmp_path / "figure2.png").stat().st_size > 10_000
    assert set(metrics["solvers_on_2rf"]) == {"euler", "midpoint", "fireflow"}
    assert "RMSE to exact ODE" in capsys.readouterr().out


def test_demo_rejects_bad_options(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--samples", "5000"]) == 2
    assert "--samples must be between 2 and 2000" in capsys.readouterr().err


def test_demo_checks_every_option_before_training(tmp_path, capsys, monkeypatch):
    import fireflow_edu.toy.experiment as experiment

    def no_training(*args, **kwargs):
        raise AssertionError("training started before the options were checked")

    monkeypatch.setattr(experiment, "train_toy_flows", no_training)
    assert main(["demo", "--out", str(tmp_path), "--nfe", "1"]) == 2
    assert "needs at least 2 NFE" in capsys.readouterr().err
    taken = tmp_path / "metrics.json"
    taken.write_text("{}")
    assert main(["demo", "--out", str(taken)]) == 2
    assert "is a file" in capsys.readouterr().err


def test_trained_flows_are_cached_per_setting_and_reloaded(tmp_path, monkeypatch):
    from fireflow_edu.toy import experiment

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = experiment.train_toy_flows(iterations=20, reflow_pairs=100, seed=3, progress=False)
    assert len(list((tmp_path / "fireflow_edu" / "toy_flows").glob("*.pt"))) == 1
    monkeypatch.setattr(experiment, "train_rectified_flow", lambda *a, **k: pytest.fail("trained again"))
    again = experiment.train_toy_flows(iterations=20, reflow_pairs=100, seed=3, progress=False)
    x = torch.randn(5, 2)
    t = torch.full((5,), 0.5)
    assert torch.equal(first.rf2(x, t), again.rf2(x, t)) and again.losses1 == first.losses1
    with pytest.raises(pytest.fail.Exception, match="trained again"):  # another setting is another file
        experiment.train_toy_flows(iterations=21, reflow_pairs=100, seed=3, progress=False)


@pytest.mark.parametrize("iterations", [10_000, 2_000])
def test_the_tutorials_flows_ship_under_the_current_code_key(iterations, tmp_path, monkeypatch):
    """A change to the training code changes the key: this test then says to ship the flows trained anew."""
    from fireflow_edu.toy import experiment

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    name = experiment._cache_path(iterations, 10_000, 0, 256).name
    assert (experiment.SHIPPED / name).exists(), (
        f"the shipped toy flows are stale: run train_toy_flows(iterations={iterations}) once and copy "
        f"cache_dir()/toy_flows/{name} (fireflow_edu.config.cache_dir) to fireflow_edu/toy/pretrained/, "
        "removing the old file")
    monkeypatch.setattr(experiment, "train_rectified_flow", lambda *a, **k: pytest.fail("trained"))
    flows = experiment.train_toy_flows(iterations=iterations, progress=False)
    assert len(flows.losses1) == len(flows.losses2) == iterations
    assert not (tmp_path / "fireflow_edu").exists()  # nothing written to the learner's cache
    assert sorted(p.name for p in experiment.SHIPPED.iterdir()) == sorted(
        experiment._cache_path(i, 10_000, 0, 256).name for i in (10_000, 2_000))  # no stale file left beside them


def test_flows_asked_for_twice_at_once_are_trained_once(tmp_path, monkeypatch):
    """Two notebooks (or processes) starting together: the second waits on the cache's lock and loads."""
    from concurrent.futures import ThreadPoolExecutor

    from fireflow_edu.toy import experiment

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    trained, train = [], experiment.train_rectified_flow
    monkeypatch.setattr(experiment, "train_rectified_flow", lambda *a, **k: trained.append(1) or train(*a, **k))
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(lambda _: experiment.train_toy_flows(iterations=20, reflow_pairs=100, seed=3,
                                                                       progress=False), range(2))
    assert len(trained) == 1  # 1-RF (and then its reflow) trained by one of the two
    x, t = torch.randn(5, 2), torch.full((5,), 0.5)
    assert torch.equal(first.rf2(x, t), second.rf2(x, t))
