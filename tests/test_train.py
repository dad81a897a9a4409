"""The training loop: it learns, validates, checkpoints, and resumes bit-for-bit."""

import json
import os
from dataclasses import replace

import numpy as np
import pytest
import torch

from unetkit import load_model
from unetkit.augment import AugmentConfig
from unetkit.data import make_pairs
from unetkit.model import ModelConfig
from unetkit.normalize import NormalizationConfig
from unetkit.synthetic import make_em_dataset
from unetkit.train import RunConfig, TrainCallbacks, TrainConfig, TrainingDiverged, train_on_pairs
from unetkit.weights import WeightMapConfig


@pytest.fixture(scope="module")
def pairs():
    samples = make_em_dataset(3, (96, 96), seed=5)
    norm = NormalizationConfig(mode="zscore")
    made = make_pairs([s.image for s in samples], [s.labels for s in samples], kind="binary", normalization=norm,
                      weight_config=WeightMapConfig())
    return made[:2], made[2:]


def small_run(**train_kwargs) -> RunConfig:
    train = TrainConfig(steps=6, tile=124, lr=0.01, val_every=3, checkpoint_every=3, log_every=1,
                        progress=False, plots=False, threads=1)
    return RunConfig(
        model=ModelConfig(depth=2, base_features=4, dropout=0.5, normalization=NormalizationConfig(mode="zscore")),
        augment=AugmentConfig(),
        weights=WeightMapConfig(),
        train=replace(train, **train_kwargs),
    )


def weights_of(path):
    return load_model(path).state_dict()


def test_resume_is_bitwise_exact(tmp_path, pairs):
    train_pairs, val_pairs = pairs
    run = small_run()
    train_on_pairs(run, train_pairs, val_pairs, tmp_path / "straight", log=lambda m: None)
    half = replace(run, train=replace(run.train, steps=3))
    train_on_pairs(half, train_pairs, val_pairs, tmp_path / "resumed", log=lambda m: None)
    train_on_pairs(run, train_pairs, val_pairs, tmp_path / "resumed", resume=True, log=lambda m: None)
    a = weights_of(tmp_path / "straight" / "last.pt")
    b = weights_of(tmp_path / "resumed" / "last.pt")
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # the optimiser state (momentum buffers) matches too
    sa = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)["optimizer"]["state"]
    sb = torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)["optimizer"]["state"]
    for k in sa:
        assert torch.equal(sa[k]["momentum_buffer"], sb[k]["momentum_buffer"])
    # the log has one record per step and validation, without duplicates
    records = [json.loads(l) for l in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if "loss" in r]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_outputs_and_validation_metrics(tmp_path, pairs):
    train_pairs, val_pairs = pairs
    run = small_run(steps=4, val_every=2, checkpoint_every=2, plots=True)
    summary = train_on_pairs(run, train_pairs, val_pairs, tmp_path, log=lambda m: None)
    for name in ("best.pt", "last.pt", "config.json", "metrics.jsonl", "curves.png", "samples.png"):
        assert (tmp_path / name).is_file(), name
    val = summary.validation
    for key in ("loss", "accuracy", "pixel_error", "rand_error", "iou", "v_rand"):
        assert key in val
    assert 0 <= val["accuracy"] <= 1
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["train"]["steps"] == 4 and config["model"]["depth"] == 2


@pytest.mark.slow
def test_training_learns_the_synthetic_task(tmp_path):
    samples = make_em_dataset(4, (128, 128), seed=0)
    norm = NormalizationConfig(mode="zscore")
    made = make_pairs([s.image for s in samples], [s.labels for s in samples], kind="binary", normalization=norm,
                      weight_config=WeightMapConfig(w0=0.0, class_balance=False))
    run = small_run(steps=100, tile=140, lr=1e-3, optimizer="adam", val_every=100, checkpoint_every=100)
    run = replace(run, weights=WeightMapConfig(w0=0.0, class_balance=False))
    run = replace(run, model=replace(run.model, base_features=8, dropout=0.0))
    summary = train_on_pairs(run, made[:3], made[3:], tmp_path, log=lambda m: None)
    all_cell = float((made[3].classes == 1).mean())  # the accuracy of the constant "cell" answer
    # after 100 steps the network finds membranes: clearly better than the constant answer
    assert summary.validation["accuracy"] > all_cell + 0.015
    assert summary.validation["iou"] > 0.9


def test_nan_loss_stops_with_clear_message_and_keeps_last_good_checkpoint(tmp_path, pairs):
    train_pairs, val_pairs = pairs
    run = small_run(steps=3, checkpoint_every=1, val_every=100)
    train_on_pairs(run, train_pairs, [], tmp_path, log=lambda m: None)
    good = (tmp_path / "last.pt").read_bytes()
    bad = [replace(p, image=np.full_like(p.image, np.nan)) for p in train_pairs]
    with pytest.raises(TrainingDiverged, match="loss became nan at step 0"):
        train_on_pairs(replace(run, train=replace(run.train, steps=3)), bad, [], tmp_path, log=lambda m: None)
    assert (tmp_path / "last.pt").read_bytes() == good


@pytest.mark.parametrize("bf16_cpu", [False, True], ids=["cpu-without-bf16", "cpu-with-bf16"])
def test_amp_on_cpu_follows_the_bf16_instructions_and_channels_last_trains(tmp_path, pairs, monkeypatch, bf16_cpu):
    """train.amp on the CPU: a bitwise no-op where the CPU lacks bf16 instructions; bf16 autocast where it has
    them (weights differ from float32's by bf16 rounding, stay finite and close), in channels-last layout unless
    train.channels_last says otherwise. train.channels_last = true trains to finite weights whose predictions
    match a contiguous run's within float rounding."""
    from unetkit import devices

    monkeypatch.setattr(devices, "_cpu_has_bf16_instructions", lambda: bf16_cpu)
    train_pairs, val_pairs = pairs
    train_on_pairs(small_run(), train_pairs, val_pairs, tmp_path / "plain", log=lambda m: None)
    said: list[str] = []
    train_on_pairs(small_run(amp=True), train_pairs, val_pairs, tmp_path / "amp", log=said.append)
    train_on_pairs(small_run(channels_last=True), train_pairs, val_pairs, tmp_path / "cl", log=lambda m: None)
    assert ("training on cpu: bf16 autocast, channels-last" if bf16_cpu else
            "training on cpu: float32 (train.amp: this CPU has no bf16 instructions)") in said
    plain, amp, cl = (weights_of(tmp_path / name / "last.pt") for name in ("plain", "amp", "cl"))
    for key in plain:
        assert torch.isfinite(cl[key]).all() and torch.isfinite(amp[key]).all()
        assert torch.allclose(plain[key], cl[key], atol=1e-4), key
        if not bf16_cpu:
            assert torch.equal(plain[key], amp[key]), key
    if bf16_cpu:
        assert any(not torch.equal(plain[k], amp[k]) for k in plain), "amp trained bit for bit like float32"
        # six steps of lr 0.01 from the same start: bf16 rounding moves the weights far less than training does
        moved = sum(float((plain[k] - amp[k]).norm()) for k in plain if plain[k].is_floating_point())
        scale = sum(float(plain[k].norm()) for k in plain if plain[k].is_floating_point())
        assert moved < 0.05 * scale
    info = load_model(tmp_path / "amp" / "last.pt").training_info
    assert info["bf16"] is bf16_cpu and info["channels_last"] is bf16_cpu
    assert load_model(tmp_path / "cl" / "last.pt").training_info["channels_last"] is True
    assert load_model(tmp_path / "plain" / "last.pt").training_info["channels_last"] is False


def test_grad_clip_bounds_each_update_and_logs_the_norm(tmp_path, pairs):
    """With plain SGD (no momentum) one step moves the weights by lr * clipped gradient: norm <= lr * clip."""
    train_pairs, _ = pairs
    lr, clip = 0.5, 1e-3
    run = small_run(steps=1, lr=lr, momentum=0.0, grad_clip=clip, checkpoint_every=1)
    train_on_pairs(run, train_pairs, [], tmp_path / "clipped", log=lambda m: None)
    torch.manual_seed(run.train.seed)
    from unetkit import UNet

    start = UNet.from_config(run.model).state_dict()
    after = weights_of(tmp_path / "clipped" / "last.pt")
    moved = torch.sqrt(sum(((after[k] - start[k]).double() ** 2).sum() for k in start))
    # = lr * clip up to float32 rounding of the weights (the unclipped update would be far larger)
    assert abs(moved / (lr * clip) - 1) < 0.01
    records = [json.loads(l) for l in (tmp_path / "clipped" / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["grad_norm"] > clip  # the norm before clipping is logged
    with pytest.raises(ValueError, match="grad_clip"):
        TrainConfig(grad_clip=-1.0)


def test_a_diverging_run_keeps_a_finite_last_checkpoint(tmp_path, pairs):
    """The update at step 3 overflows the weights (SGD, lr 1e38) on a checkpoint step: the step-2 checkpoint stays."""
    from unetkit import predict

    train_pairs, _ = pairs
    run = small_run(steps=2, checkpoint_every=1, val_every=100, momentum=0.0)
    train_on_pairs(run, train_pairs, [], tmp_path, log=lambda m: None)
    good = (tmp_path / "last.pt").read_bytes()
    blow_up = replace(run, train=replace(run.train, steps=4, lr=1e38))
    with pytest.raises(TrainingDiverged, match="last good checkpoint"):
        train_on_pairs(blow_up, train_pairs, [], tmp_path, resume=True, log=lambda m: None)
    assert (tmp_path / "last.pt").read_bytes() == good
    prob = predict(load_model(tmp_path / "last.pt"), train_pairs[0].image, normalize_input=False)
    assert np.isfinite(prob).all()


def test_invalid_settings_create_no_run_folder(tmp_path, pairs):
    train_pairs, _ = pairs
    with pytest.raises(ValueError, match="train.tile"):
        train_on_pairs(small_run(tile=570), train_pairs, [], tmp_path / "run", log=lambda m: None)
    with pytest.raises(ValueError, match="resume"):
        train_on_pairs(small_run(), train_pairs, [], tmp_path / "run", resume=True, log=lambda m: None)
    assert not (tmp_path / "run").exists()


def test_the_recorded_config_is_the_one_that_trained(tmp_path):
    samples = make_em_dataset(2, (96, 96), seed=3)
    norm = NormalizationConfig(mode="zscore")
    wcfg = WeightMapConfig(w0=3.0, sigma=2.0, border_width=2)
    made = make_pairs([s.image for s in samples], [s.labels for s in samples], normalization=norm, weight_config=wcfg)
    from unetkit.data import DataConfig

    run = replace(small_run(steps=1), data=DataConfig(images="elsewhere", labels="elsewhere"))
    train_on_pairs(run, made, [], tmp_path, log=lambda m: None)  # run.weights says w0 = 10
    assert json.loads((tmp_path / "config.json").read_text())["data"]["images"] == ""  # the pairs did not come from it
    recorded = json.loads((tmp_path / "config.json").read_text())["weights"]
    assert (recorded["w0"], recorded["sigma"], recorded["border_width"]) == (3.0, 2.0, 2)
    other = make_pairs([s.image for s in samples], [s.labels for s in samples],
                       normalization=NormalizationConfig(mode="percentile"), weight_config=wcfg)
    with pytest.raises(ValueError, match="normalis"):
        train_on_pairs(small_run(steps=1), other, [], tmp_path / "b", log=lambda m: None)


def test_training_leaves_the_callers_rng_and_threads_alone(tmp_path, pairs):
    train_pairs, _ = pairs
    torch.manual_seed(1234)
    threads = torch.get_num_threads()
    expected = torch.rand(3)
    torch.manual_seed(1234)
    train_on_pairs(small_run(steps=2, threads=1), train_pairs, [], tmp_path, log=lambda m: None)
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads


def test_a_time_budget_sets_the_steps_and_ends_on_time(tmp_path, pairs):
    """train.budget = 20 s on a tiny model: calibrated steps, the schedule ends within a few seconds of 20 s."""
    import time

    train_pairs, val_pairs = pairs
    run = small_run(steps=5, budget="20s", val_every=400, checkpoint_every=400, log_every=50)
    messages = []
    t0 = time.perf_counter()
    result = train_on_pairs(run, train_pairs, val_pairs, tmp_path, log=messages.append)
    elapsed = time.perf_counter() - t0
    assert abs(elapsed - 20) < 4, elapsed
    assert result.steps > 100  # far more than train.steps = 5: the budget decided
    assert any(m.startswith("budget 20s:") and f"-> {result.steps} steps" in m for m in messages), messages
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["train"]["steps"] == result.steps and config["train"]["budget"] == "20s"
    assert torch.load(tmp_path / "last.pt", weights_only=True)["step"] == result.steps


def test_dropout_follows_the_length_of_the_schedule(tmp_path, pairs):
    """train.dropout_min_passes: a schedule that shows each pixel fewer times trains bitwise as with dropout 0;
    one that shows it at least that often trains bitwise as with dropout always on."""
    from unetkit import geometry

    train_pairs, _ = pairs
    run = small_run(steps=4, optimizer="adam", lr=1e-3, checkpoint_every=100)  # model.dropout = 0.5
    window = geometry.output_size(124, depth=2, padding="valid") ** 2
    passes = 4 * window / (2 * 96 * 96)  # 4 steps x one tile's loss window / two 96 x 96 images

    def fit(name, run, log=lambda m: None):
        train_on_pairs(run, train_pairs, [], tmp_path / name, log=log)
        return torch.load(tmp_path / name / "last.pt", weights_only=True)

    said = []
    short = fit("short", replace(run, train=replace(run.train, dropout_min_passes=passes * 1.01)), said.append)
    zero = fit("zero", replace(run, model=replace(run.model, dropout=0.0)))
    long = fit("long", replace(run, train=replace(run.train, dropout_min_passes=passes * 0.99)), said.append)
    always = fit("always", run)
    for key in short["state_dict"]:
        assert torch.equal(short["state_dict"][key], zero["state_dict"][key]), key
        assert torch.equal(long["state_dict"][key], always["state_dict"][key]), key
    assert any(not torch.equal(short["state_dict"][k], long["state_dict"][k]) for k in short["state_dict"])
    assert short["training"]["dropout"] == 0.0 and long["training"]["dropout"] == 0.5
    assert short["training"]["passes"] == pytest.approx(passes)
    said = [m for m in said if m.startswith("dropout")]
    assert said[0].startswith(f"dropout off (0): the schedule shows each training pixel {passes:.0f} times (<")
    assert said[1].startswith("dropout on (0.5)")
    with pytest.raises(ValueError, match="dropout_min_passes"):
        TrainConfig(dropout_min_passes=-1)


def test_a_budget_run_decides_its_dropout_once_the_steps_are_known(tmp_path, pairs):
    """Off for the calibration steps, then on: the budget's schedule shows each pixel more than 1 time."""
    train_pairs, _ = pairs
    run = small_run(steps=5, budget="3s", calibration_steps=3, dropout_min_passes=1.0, checkpoint_every=10**6)
    said = []
    result = train_on_pairs(run, train_pairs, [], tmp_path, log=said.append)
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    assert ckpt["training"]["dropout"] == 0.5 and ckpt["training"]["passes"] > 1.0
    first = next(i for i, m in enumerate(said) if m.startswith("budget 3s:"))  # the calibration's line
    assert not any(m.startswith("dropout") for m in said[:first]), said  # nothing said before the steps are known
    assert said[first + 1].startswith("dropout on (0.5)"), said
    assert result.steps > 5
    # before the calibration the rule's run is the dropout-0 run bit for bit; dropout always on is not
    def two_steps(name, run):
        asked = []  # should_stop is asked after every step
        stop = TrainCallbacks(should_stop=lambda: asked.append(1) or len(asked) >= 2)
        train_on_pairs(run, train_pairs, [], tmp_path / name, log=lambda m: None, callbacks=stop)
        ckpt = torch.load(tmp_path / name / "last.pt", weights_only=True)
        assert ckpt["step"] == 2
        return ckpt["state_dict"]

    slow = replace(run, train=replace(run.train, budget="60s", calibration_steps=10, log_every=1))
    rule = two_steps("rule", slow)
    zero = two_steps("zero", replace(slow, model=replace(slow.model, dropout=0.0)))
    always = two_steps("always", replace(slow, train=replace(slow.train, dropout_min_passes=0.0)))
    assert all(torch.equal(rule[k], zero[k]) for k in rule)
    assert not all(torch.equal(rule[k], always[k]) for k in rule)


def test_fine_tuning_may_change_dropout_but_not_the_architecture_and_resume_names_what_differs(tmp_path, pairs):
    """train.init_from: dropout has no weights, so it may differ; depth may not. --resume names the difference."""
    train_pairs, _ = pairs
    run = small_run(steps=2, checkpoint_every=100)  # dropout 0.5
    train_on_pairs(run, train_pairs, [], tmp_path / "base", log=lambda m: None)
    said = []
    tuned = replace(run, model=replace(run.model, dropout=0.0),
                    train=replace(run.train, init_from=str(tmp_path / "base" / "last.pt")))
    train_on_pairs(tuned, train_pairs, [], tmp_path / "tuned", log=said.append)
    assert any(m.startswith("starting from the weights of") for m in said)
    deeper = replace(tuned, model=replace(tuned.model, depth=3), train=replace(tuned.train, tile=188))
    with pytest.raises(ValueError, match=r"another architecture \(depth differ\)"):
        train_on_pairs(deeper, train_pairs, [], tmp_path / "deeper", log=lambda m: None)
    with pytest.raises(ValueError, match=r"another model config \(model.dropout = 0.5\); cannot resume"):
        train_on_pairs(replace(run, model=replace(run.model, dropout=0.0)), train_pairs, [], tmp_path / "base",
                       resume=True, log=lambda m: None)


def test_a_budget_whose_first_steps_were_slow_is_re_estimated_and_still_spent(tmp_path, pairs, monkeypatch):
    """The calibration steps take 0.3 s each, the rest a few ms: without a re-estimate the run would stop after
    ~70 steps at ~4 s of a 15 s budget; with it, the run is re-estimated and ends within a few seconds of 15 s."""
    import time

    from unetkit.train import loop

    step = loop._train_step

    def slow_at_first(state, *args):
        if state.step < 12:
            time.sleep(0.3)
        return step(state, *args)

    monkeypatch.setattr(loop, "_train_step", slow_at_first)
    train_pairs, val_pairs = pairs
    run = small_run(steps=5, budget="15s", calibration_steps=10, val_every=10**6, checkpoint_every=10**6,
                    log_every=50)
    messages = []
    t0 = time.perf_counter()
    result = train_on_pairs(run, train_pairs, val_pairs, tmp_path, log=messages.append)
    elapsed = time.perf_counter() - t0
    assert abs(elapsed - 15) < 4, (elapsed, messages)
    first = next(m for m in messages if m.startswith("budget 15s:"))
    assert any(m.startswith("budget 15s:") and "(was" in m for m in messages), messages
    assert result.steps > int(first.split("-> ")[1].split()[0]), (result.steps, first)
    assert json.loads((tmp_path / "config.json").read_text())["train"]["steps"] == result.steps


def test_the_weight_average_is_what_is_saved_and_resume_stays_exact(tmp_path, pairs):
    train_pairs, val_pairs = pairs
    run = small_run(ema=0.9, optimizer="adam", lr=1e-3)
    train_on_pairs(run, train_pairs, val_pairs, tmp_path / "straight", log=lambda m: None)
    half = replace(run, train=replace(run.train, steps=3))
    train_on_pairs(half, train_pairs, val_pairs, tmp_path / "resumed", log=lambda m: None)
    train_on_pairs(run, train_pairs, val_pairs, tmp_path / "resumed", resume=True, log=lambda m: None)
    a = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
        assert torch.equal(a["raw_state_dict"][key], b["raw_state_dict"][key]), key
    moved = [k for k in a["state_dict"] if not torch.equal(a["state_dict"][k], a["raw_state_dict"][k])]
    assert moved  # the saved weights are the average, not the last weights


def test_residual_blocks_keep_the_size_rule_and_tile_seamlessly():
    from unetkit import UNet, predict

    torch.manual_seed(0)
    model = UNet(1, 2, base_features=4, depth=3, residual=True, batch_norm=True, dropout=0.0).eval()
    assert model.output_shape((124, 124)) == UNet(1, 2, depth=3).output_shape((124, 124))
    image = np.random.default_rng(0).normal(size=(150, 170)).astype(np.float64)
    model = model.double()
    whole = predict(model, image, tile_shape=(252, 268))  # one tile covers the image
    tiled = predict(model, image, tile_shape=(124, 124))
    np.testing.assert_allclose(tiled, whole, atol=1e-9)


def test_profiles_fill_in_under_the_files_own_values():
    from unetkit.train import PROFILES, run_config

    paper = run_config({"profile": "paper", "train": {"steps": 7}})
    assert paper.profile == "paper" and paper.train.steps == 7
    assert paper.train.optimizer == "sgd" and paper.train.momentum == 0.99 and paper.model.batch_norm is False
    assert paper.weights.w0 == 10.0
    default = run_config({})
    assert default.profile == "default"
    for section, values in PROFILES["default"].items():
        for key, value in values.items():
            assert getattr(getattr(default, section), key) == value, (section, key)
    with pytest.raises(ValueError, match="profile"):
        run_config({"profile": "fastest"})


def test_two_process_ddp_equals_one_process_at_twice_the_batch(tmp_path):
    """torchrun with 2 gloo processes at batch 1 == one process at batch 2, after 4 steps (weights within 1e-5)."""
    import subprocess
    import sys

    from unetkit.io import write_png

    for sub in ("images", "labels"):
        (tmp_path / sub).mkdir()
    for i, s in enumerate(make_em_dataset(3, (80, 80), seed=2)):
        write_png(tmp_path / "images" / f"{i}.png", s.image)
        write_png(tmp_path / "labels" / f"{i}.png", s.labels)
    (tmp_path / "c.toml").write_text(
        '[model]\ndepth = 2\nbase_features = 4\ndropout = 0.0\n[data]\nimages = "images"\nlabels = "labels"\n'
        'select = "0:2"\nval_select = "2:3"\n[train]\nsteps = 4\ntile = 124\noptimizer = "adam"\nlr = 0.001\n'
        "val_every = 2\ncheckpoint_every = 2\nplots = false\nthreads = 1\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = subprocess.run([sys.executable, "-m", "unetkit", "train", str(tmp_path / "c.toml"), "--out",
                             str(tmp_path / "one"), "--set", "train.batch_size=2", "--quiet"], env=env,
                            capture_output=True, text=True)
    assert single.returncode == 0, single.stderr
    # --standalone: a rendezvous on a free local port each time (a fixed --master_port failed one full run)
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
                          "-m", "unetkit", "train", str(tmp_path / "c.toml"), "--out", str(tmp_path / "two"),
                          "--set", "train.batch_size=1", "--quiet"], env=env, capture_output=True, text=True)
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    assert ddp.stdout.count("trained 4 steps") == 1  # rank 0 reports, alone
    a, b = weights_of(tmp_path / "one" / "last.pt"), weights_of(tmp_path / "two" / "last.pt")
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), (key, (a[key] - b[key]).abs().max())
    records = [json.loads(l) for l in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert sum("val" in r for r in records) == 2  # validation ran once per validation step, not twice
    # resume under DDP continues from last.pt
    more = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
                           "-m", "unetkit", "train", str(tmp_path / "c.toml"), "--out", str(tmp_path / "two"),
                           "--set", "train.batch_size=1", "--set", "train.steps=6", "--resume", "--quiet"], env=env,
                          capture_output=True, text=True)
    assert more.returncode == 0, more.stderr[-2000:]
    assert torch.load(tmp_path / "two" / "last.pt", weights_only=True)["step"] == 6
