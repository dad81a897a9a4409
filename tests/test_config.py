import pytest

from unetkit.config import ConfigError, apply_overrides, from_dict, load_config_file, parse_value
from unetkit.train import RunConfig


def test_toml_and_yaml_configs_map_onto_dataclasses(tmp_path):
    (tmp_path / "c.toml").write_text(
        '[model]\nbase_features = 8\n[model.normalization]\nmode = "dtype"\n'
        '[train]\nsteps = 12\nlr = 0.05\n[weights]\nw0 = 0\n'
    )
    run = from_dict(RunConfig, load_config_file(tmp_path / "c.toml"))
    assert run.model.base_features == 8 and run.model.normalization.mode == "dtype"
    assert run.train.steps == 12 and run.train.lr == 0.05 and run.train.momentum == 0.99
    assert run.weights.w0 == 0.0  # an int where a float is expected is accepted
    (tmp_path / "c.yaml").write_text("train:\n  steps: 5\n  optimizer: adam\n")
    run = from_dict(RunConfig, load_config_file(tmp_path / "c.yaml"))
    assert run.train.steps == 5 and run.train.optimizer == "adam"


def test_unknown_keys_and_wrong_types_name_the_key():
    with pytest.raises(ConfigError, match="unknown config key train.stpes"):
        from_dict(RunConfig, {"train": {"stpes": 3}})
    with pytest.raises(ConfigError, match="unknown config key modle"):
        from_dict(RunConfig, {"modle": {}})
    with pytest.raises(ConfigError, match=r"train.steps: expected int, got str"):
        from_dict(RunConfig, {"train": {"steps": "many"}})
    with pytest.raises(ConfigError, match=r"train.lr: expected float, got bool"):
        from_dict(RunConfig, {"train": {"lr": True}})
    with pytest.raises(ConfigError, match="optimizer"):
        from_dict(RunConfig, {"train": {"optimizer": "rmsprop"}})


def test_dotted_overrides():
    data = apply_overrides({"train": {"steps": 10}}, ["train.steps=20", "train.lr=1e-3", "model.padding=same",
                                                       "data.select=0:20"])
    run = from_dict(RunConfig, data)
    assert run.train.steps == 20 and run.train.lr == 1e-3 and run.model.padding == "same"
    assert run.data.select == "0:20"
    assert parse_value("[1, 2]") == [1, 2] and parse_value("true") is True and parse_value("abc") == "abc"
    with pytest.raises(ConfigError, match="section.key=value"):
        apply_overrides({}, ["train.steps"])


def test_bad_config_files(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config_file(tmp_path / "none.toml")
    (tmp_path / "bad.toml").write_text("[train\nsteps = ")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_config_file(tmp_path / "bad.toml")
