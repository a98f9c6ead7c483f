"""Config loading, overrides and validation: each mistake names its key."""
import pytest

from cckit.config import Config, config_from_dict, load_config, parse_overrides, to_dict
from cckit.errors import ConfigError


def test_presets_load_and_round_trip():
    for preset in ("configs/quickstart.yaml", "configs/quickstart_long.yaml", "configs/paper_cpu.yaml",
                   "configs/paper_r50_r2v2.yaml", "configs/gpu.yaml"):
        cfg = load_config(preset)
        assert config_from_dict(to_dict(cfg)) == cfg
    paper = load_config("configs/paper_r50_r2v2.yaml")
    assert (paper.model.arch, paper.train.batch_size, paper.train.lr, paper.train.epochs) == ("resnet50", 512, 0.06, 200)
    assert (paper.model.queue_size, paper.model.cycle_queue_size, paper.method.support_size) == (65536, 81920, 16384)
    assert (paper.method.temperature, paper.method.cycle_weight, paper.model.momentum) == (0.07, 0.1, 0.999)
    # the official recipe keeps the paper's keys and width; the quickstart is the named variant
    assert (paper.method.key_encoder, paper.model.width, paper.data.augment) == ("momentum", 64, "batch")
    quick = load_config("configs/quickstart.yaml")
    assert (quick.method.key_encoder, quick.model.width, quick.data.style, quick.train.knn_every) == ("online", 16, "clutter", 100)
    assert load_config("configs/gpu.yaml").model.width == 64


def test_quickstart_long_is_the_quickstart_trained_to_plateau():
    """The plateau preset changes the length, the schedule's end and the monitor's spacing only, so
    a comparison on it is a comparison of the quickstart's recipe."""
    quick, long = to_dict(load_config("configs/quickstart.yaml")), to_dict(load_config("configs/quickstart_long.yaml"))
    changed = {(section, key) for section in quick if isinstance(quick[section], dict)
               for key in quick[section] if quick[section][key] != long[section][key]}
    assert changed == {("train", "max_steps"), ("train", "min_lr"), ("train", "knn_every"), ("train", "checkpoint_every")}
    assert (long["train"]["max_steps"], long["train"]["min_lr"], long["run_dir"]) == (4000, 0.0, "runs/quickstart_long")


def test_overrides_are_parsed_as_yaml_values():
    cfg = load_config(None, ["train.lr=0.5", "train.max_steps=7", "data.crop_scale=[0.3, 0.9]",
                             "method.nn_temperature=null", "run_dir=runs/x", "data.flip=false"])
    assert cfg.train.lr == 0.5 and cfg.train.max_steps == 7 and cfg.data.crop_scale == (0.3, 0.9)
    assert cfg.method.nn_temperature is None and cfg.run_dir == "runs/x" and cfg.data.flip is False
    assert parse_overrides(["a.b.c=1"]) == {"a": {"b": {"c": 1}}}
    assert load_config(None) == Config()


@pytest.mark.parametrize("overrides, message", [
    (["train.lrr=0.1"], "unknown config key 'train.lrr'"),
    (["bogus=1"], "unknown config key 'bogus'"),
    (["train.lr=fast"], "train.lr: expected a number"),
    (["train.batch_size=1.5"], "train.batch_size: expected an integer"),
    (["data.flip=maybe"], "data.flip: expected true or false"),
    (["method.name=simclr"], "method.name: must be one of"),
    (["method.support_size=90000"], "method.support_size"),
    (["model.queue_size=1000"], "model.queue_size: must be a multiple of train.batch_size"),
    (["train.lr=-1"], "train.lr: must be > 0"),
    (["data.size=33"], "data.size"),
    (["train=3"], "train: expected a mapping"),
    (["novalue"], "not of the form key=value"),
])
def test_bad_config_names_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(None, overrides)


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(bad)


def test_renamed_keys_fail_with_their_new_name():
    from cckit.config import RENAMED

    assert RENAMED == {"data.cache_frames": "data.frames_in_memory", "data.frame_cache": "data.extracted_frames",
                       "data.video_cache": "data.seek_index_cache"}
    for old, new in RENAMED.items():
        with pytest.raises(ConfigError, match=rf"^{old} was renamed to {new} \(same meaning\)$"):
            load_config(None, [f"{old}=x"])
    assert load_config(None, ["data.frames_in_memory=false"]).data.frames_in_memory is False


def test_a_config_stored_before_the_renames_still_loads():
    stored = to_dict(load_config(None, ["data.frames_in_memory=false", "data.extracted_frames=/x"]))
    data = stored["data"]
    data["cache_frames"], data["frame_cache"], data["video_cache"] = (data.pop("frames_in_memory"),
                                                                    data.pop("extracted_frames"),
                                                                    data.pop("seek_index_cache"))
    cfg = config_from_dict(stored)
    assert (cfg.data.frames_in_memory, cfg.data.extracted_frames, cfg.data.seek_index_cache) == (False, "/x", "")
    assert "cache_frames" in stored["data"]  # the caller's dict is not changed
