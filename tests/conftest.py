import os

import pytest

os.environ.setdefault("CCKIT_FAST", "1")

TINY = [
    "data.num_train=32", "data.num_test=8", "data.size=32", "data.crop_size=32", "data.frames_per_video=[3,6]",
    "data.workers=0", "model.arch=resnet10", "model.queue_size=64", "model.cycle_queue_size=64",
    "model.bn_splits=2", "method.support_size=16", "train.batch_size=8", "train.log_every=1",
    "eval.frames_per_video=2", "eval.knn_k=[5]",
]


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """A generated dataset of 32 train + 8 test videos at 32 px, shared by the tests that train."""
    from cckit.config import load_config
    from cckit.data.index import load_splits

    root = tmp_path_factory.mktemp("digits")
    cfg = load_config(None, TINY + [f"data.root={root}"])
    load_splits(cfg.data)
    return root


@pytest.fixture
def tiny_overrides(tiny_data, tmp_path):
    return TINY + [f"data.root={tiny_data}", f"run_dir={tmp_path / 'run'}"]
