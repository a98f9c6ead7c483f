"""Video-level recognition: pooling equals the mean of directly computed frame features; kNN and the
probe on pooled features; UCF101's layout and official split files end to end."""
import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cckit.eval.video_level import pool_video_features, video_level_eval


def test_pooling_is_the_normalised_mean_of_the_normalised_frame_features():
    rng = np.random.default_rng(0)
    feats = torch.tensor(rng.normal(size=(9, 5)), dtype=torch.float32)
    vids = torch.tensor([7, 3, 7, 3, 3, 11, 7, 7, 11])
    labels = torch.tensor([1, 0, 1, 0, 0, 2, 1, 1, 2])
    out = pool_video_features(feats, vids, labels)
    assert out["video_ids"].tolist() == [3, 7, 11] and out["labels"].tolist() == [0, 1, 2]
    for row, v in enumerate([3, 7, 11]):
        frames = [feats[i] / feats[i].norm() for i in range(9) if vids[i] == v]
        mean = torch.stack(frames).mean(0)
        torch.testing.assert_close(out["features"][row], mean / mean.norm())


def _frames(rng, centres, labels, per_video, noise):
    feats, vids, labs = [], [], []
    for v, c in enumerate(labels):
        for _ in range(per_video):
            feats.append(centres[c] + rng.normal(size=centres.shape[1]) * noise)
            vids.append(v)
            labs.append(c)
    return {"features": torch.tensor(np.array(feats), dtype=torch.float32), "video_ids": torch.tensor(vids),
            "labels": torch.tensor(labs)}


def test_video_level_eval_on_clustered_videos_is_perfect_and_pooling_helps():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16))
    memory = _frames(rng, centres, np.repeat(np.arange(3), 10), per_video=6, noise=1.0)
    queries = _frames(rng, centres, np.repeat(np.arange(3), 5), per_video=6, noise=1.0)
    out = video_level_eval(memory, queries, knn_k=(5,), weight_decays=(1e-2,))
    assert out["videos_train"] == 30 and out["videos_test"] == 15
    assert out["knn5_top1"] == 1.0 and out["linear_top1"] == 1.0
    # the frames alone are noisy: single-frame 1-NN is below the pooled accuracy
    sims = F.normalize(queries["features"], dim=1) @ F.normalize(memory["features"], dim=1).t()
    frame_acc = float((memory["labels"][sims.argmax(1)] == queries["labels"]).float().mean())
    assert frame_acc < 1.0


def _write_avi(path, colour, n=4, size=32):
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="avi") as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width = s.height = size
        s.pix_fmt = "yuv420p"
        for i in range(n):
            img = np.zeros((size, size, 3), np.uint8)
            img[...] = colour
            img[4 + i:14 + i, 4:14] = 255
            c.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        c.mux(s.encode(None))


@pytest.fixture
def tiny_ucf(tmp_path):
    """UCF101 layout: UCF-101/<Class>/v_<Class>_gXX_cYY.avi + ucfTrainTestlist/{classInd,trainlist01,testlist01}.txt."""
    classes = {"ApplyEyeMakeup": (200, 30, 30), "HandstandPushups": (30, 30, 200)}
    train, test = [], []
    for name, colour in classes.items():
        # the official lists spell this class 'HandStandPushups' inside file names
        stem = "HandStandPushups" if name == "HandstandPushups" else name
        for g in range(1, 5):
            rel = f"{name}/v_{stem}_g{g:02d}_c01.avi"
            _write_avi(tmp_path / "UCF-101" / rel, colour)
            (test if g == 1 else train).append(rel)
    lists = tmp_path / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 HandstandPushups\n")
    (lists / "trainlist01.txt").write_text("".join(f"{r} {1 + (r[0] == 'H')}\n" for r in train))
    (lists / "testlist01.txt").write_text("".join(f"{r}\n" for r in test))
    return tmp_path


def test_ucf101_layout_and_split_files_through_the_video_protocol(tiny_ucf, tmp_path):
    from cckit.config import load_config
    from cckit.data.index import load_splits
    from cckit.model import random_backbone
    from cckit.eval.suite import evaluate

    cfg = load_config(None, ["data.source=videos", f"data.root={tiny_ucf / 'UCF-101'}",
                             f"data.train_list={tiny_ucf / 'ucfTrainTestlist/trainlist01.txt'}",
                             f"data.test_list={tiny_ucf / 'ucfTrainTestlist/testlist01.txt'}",
                             "data.crop_size=32", "data.workers=0", "model.arch=resnet10", "eval.frames_per_video=3",
                             "eval.knn_k=[3]", "eval.linear_weight_decay=[0.01]", f"run_dir={tmp_path / 'run'}", f"data.seek_index_cache={tmp_path / 'index'}"])
    splits = load_splits(cfg.data)
    assert len(splits["train"]) == 6 and len(splits["test"]) == 2
    assert sorted(r.label for r in splits["test"]) == [0, 1]  # labels in classInd order
    out = evaluate(random_backbone(cfg), cfg, ("video",), splits=splits)
    assert out["video_videos_train"] == 6 and out["video_videos_test"] == 2
    assert out["eval_frames_train"] == 18  # 3 frames per video
    assert out["video_knn3_top1"] == 1.0  # colour separates the two classes even for random features
