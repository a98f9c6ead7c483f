"""cckit.viz: the numbers behind each figure against direct computations, and the figures show them."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cckit.viz import (CycleBrowser, FrameBank, KnnExplorer, compare_embeddings_figure, confusion_matrix,
                       confusion_matrix_figure, cycle_consistency, cycle_match, cycle_match_figure, embed_2d,
                       figure_png, frame_bank, nearest_neighbors, per_class_accuracy, per_class_accuracy_figure,
                       positive_pairs, positive_pairs_figure, retrieval_grid_figure, training_curves_figure)
from cckit.viz.cycle import support_rows
from cckit.viz.curves import smooth


def random_bank(videos=10, frames=4, dim=8, seed=0, name="random", classes=5) -> FrameBank:
    g = torch.Generator().manual_seed(seed)
    n = videos * frames
    video_ids = torch.arange(videos).repeat_interleave(frames) + 100
    emb = F.normalize(torch.randn(n, dim, generator=g), dim=1)
    images = np.random.default_rng(seed).integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    return FrameBank(name=name, images=images, labels=(video_ids - 100) % classes, video_ids=video_ids,
                     frame_indices=torch.arange(frames).repeat(videos), features=emb,
                     intra=F.normalize(torch.randn(n, dim, generator=g), dim=1), cycle=emb.clone(),
                     class_names=[f"c{i}" for i in range(classes)])


def shown_images(fig):
    """The arrays of every image panel of a figure, in axes order."""
    return [ax.images[0].get_array() for ax in fig.axes if ax.images]


@pytest.mark.parametrize("query,support_size,t_nn", [(0, 16, 0.1), (7, 32, 0.05), (39, 100, 1.0)])
def test_cycle_match_against_a_direct_computation(query, support_size, t_nn):
    bank = random_bank()
    m = cycle_match(bank, query, support_size=support_size, nn_temperature=t_nn, seed=3)
    emb, vids = bank.cycle, bank.video_ids
    in_u = support_rows(len(bank), support_size, 3)
    own = vids == vids[query]
    support = (in_u & ~own).nonzero().flatten()
    assert set(m.support.tolist()) == set(support.tolist()) and not own[m.support].any()
    torch.testing.assert_close(m.weights.sum(), torch.tensor(1.0))
    assert torch.all(m.weights[:-1] >= m.weights[1:])  # sorted, highest first
    direct = torch.softmax(emb[query] @ emb[m.support].t() / t_nn, dim=0)
    torch.testing.assert_close(m.weights, direct)
    torch.testing.assert_close(m.nn, F.normalize(direct @ emb[m.support], dim=0))
    # back: every row outside the support (own-video frames included), except the query itself
    expected = [i for i in range(len(bank)) if i != query and not (in_u[i] and not own[i])]
    assert sorted(m.candidates.tolist()) == expected
    torch.testing.assert_close(m.scores, emb[m.candidates] @ m.nn)
    assert torch.all(m.scores[:-1] >= m.scores[1:])
    best = max(expected, key=lambda i: float(emb[i] @ m.nn))
    assert m.returns == bool(vids[best] == vids[query])
    first_own = next(r for r, i in enumerate(m.candidates.tolist(), 1) if vids[i] == vids[query])
    assert m.own_video_rank == first_own and m.returns == (first_own == 1)


def test_soft_neighbour_is_the_support_mean_at_high_temperature():
    bank = random_bank()
    m = cycle_match(bank, 5, support_size=20, nn_temperature=1e6)
    torch.testing.assert_close(m.weights, torch.full_like(m.weights, 1 / len(m.weights)))
    torch.testing.assert_close(m.nn, F.normalize(bank.cycle[m.support].mean(0), dim=0))


def test_cycle_closed_forms():
    # orthogonal videos (each frame on its video's axis): n is a mix of other videos' axes, so the
    # query's own frames score 0 and any candidate of a support video scores > 0: no return.
    # 5 frames a video and 4 support rows leave every support video a frame among the candidates.
    bank = random_bank(videos=10, frames=5, dim=10)
    bank.cycle = torch.eye(10)[bank.video_ids - 100]
    m = cycle_match(bank, 0, support_size=4, nn_temperature=0.1, seed=1)
    assert not m.returns and m.own_video_rank > 1 and m.scores[0] > 0
    assert torch.all(m.scores[m.own_video] == 0)
    # support = every row: the only candidates left are the query's own other frames, so it returns
    m = cycle_match(bank, 7, support_size=len(bank), nn_temperature=0.1)
    assert sorted(m.candidates.tolist()) == [5, 6, 8, 9] and m.returns and m.own_video_rank == 1
    # a one-frame video has nothing to return to
    single = bank.subset(torch.arange(1, len(bank)))  # video 100 keeps frames 1..4; drop all but one
    single = single.subset(torch.arange(3, len(single)))
    m = cycle_match(single, 0, support_size=8)
    assert not m.returns and m.own_video_rank == 0


@pytest.mark.parametrize("support_size,t_nn", [(8, 0.1), (25, 0.03), (1000, 0.5)])
def test_cycle_consistency_equals_one_query_at_a_time(support_size, t_nn):
    bank = random_bank(seed=4)
    rate = cycle_consistency(bank, support_size=support_size, nn_temperature=t_nn, seed=2, chunk_size=7)
    one_by_one = [cycle_match(bank, i, support_size=support_size, nn_temperature=t_nn, seed=2).returns
                  for i in range(len(bank))]
    assert rate.tolist() == one_by_one


def test_cycle_match_figure_shows_the_match():
    bank = random_bank()
    m = cycle_match(bank, 3, support_size=16)
    fig = cycle_match_figure(bank, m, top_k=4)
    images = shown_images(fig)
    assert len(images) == 1 + 4 + 4  # query, top support, top candidates
    expected = [3] + m.support[:4].tolist() + m.candidates[:4].tolist()
    for shown, row in zip(images, expected):
        np.testing.assert_array_equal(np.asarray(shown), bank.images[row])
    bars = [p.get_height() for p in fig.axes[-1].patches]
    np.testing.assert_allclose(bars, m.weights[:len(bars)].numpy(), rtol=1e-6)
    assert fig.axes[-1].get_ylabel() and fig.axes[-1].get_xlabel()
    assert figure_png(fig).startswith(b"\x89PNG")


def test_cycle_browser_recomputes_on_every_control():
    banks = {"a": random_bank(seed=0, name="a"), "b": random_bank(seed=1, name="b")}
    browser = CycleBrowser(banks, support_sizes=(8, 16), temperatures=(0.05, 0.5), nn_temperature=0.05, support_size=16)
    first = browser.match
    ref = cycle_match(banks["a"], 0, support_size=16, nn_temperature=0.05)
    assert first.query == 0 and torch.equal(first.support, ref.support)
    assert browser.rate == pytest.approx(float(cycle_consistency(banks["a"], support_size=16, nn_temperature=0.05).float().mean()))
    image, text = browser.image.value, browser.summary.value
    browser.query.value = 5
    assert browser.match.query == 5 and browser.image.value != image and browser.summary.value != text
    browser.temperature.value = 0.5
    torch.testing.assert_close(browser.match.weights, cycle_match(banks["a"], 5, support_size=16, nn_temperature=0.5).weights)
    browser.support.value = 40  # "all"
    assert len(browser.match.support) == 36  # 40 frames, the query's video (4 frames) removed
    browser.checkpoint.value = "b"
    assert "b ·" in browser.summary.value
    torch.testing.assert_close(browser.match.nn, cycle_match(banks["b"], 5, support_size=40, nn_temperature=0.5).nn)


def test_frame_bank_runs_the_online_encoder(tiny_data):
    from cckit.config import load_config
    from cckit.data.dataset import EvalFrames
    from cckit.data.index import load_splits
    from cckit.model import CycleContrastModel
    from conftest import TINY

    cfg = load_config(None, TINY + [f"data.root={tiny_data}"])
    records = load_splits(cfg.data)["test"]
    dataset = EvalFrames(records, 2, cfg.data.crop_size)
    torch.manual_seed(0)
    model = CycleContrastModel(cfg.model).train()
    bank = frame_bank(model, dataset, name="tiny", batch_size=5)
    assert model.training  # left as it came
    x = torch.stack([dataset[j][0] for j in range(len(dataset))])
    model.eval()
    with torch.no_grad():
        z, c = model(x)
        h = model.encoder.backbone(x)
    torch.testing.assert_close(bank.cycle, c, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(bank.intra, z, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(bank.features, F.normalize(h, dim=1), atol=1e-5, rtol=1e-4)
    i, f = dataset.items[3]
    np.testing.assert_array_equal(bank.images[3], dataset.frames.get(i, [f])[0])
    assert bank.labels.tolist() == [records[i].label for i, _ in dataset.items]
    bare = frame_bank(model.encoder.backbone, dataset)
    assert bare.cycle is None and torch.equal(bare.space("cycle"), bare.features)


def test_positive_pairs_are_the_training_items(tiny_data):
    from cckit.config import load_config
    from cckit.data.dataset import TrainClips
    from cckit.data.index import load_splits
    from conftest import TINY

    cfg = load_config(None, TINY + [f"data.root={tiny_data}"])
    clips = TrainClips(load_splits(cfg.data)["train"], cfg.data, seed=5)
    pairs = positive_pairs(clips, [2, 7, 11])
    from cckit.data.batch_augment import BatchAugment
    for col, i in enumerate([2, 7, 11]):
        frames, seed, vid, _ = clips[i]  # data.augment=batch: what the loader hands the trainer
        views = BatchAugment(cfg.data)(frames[None], torch.tensor([seed]), torch.device("cpu"))
        for key, value in zip(("x_q", "x_k", "x_p"), views):
            torch.testing.assert_close(pairs[key][col], value[0], rtol=0, atol=0)
        assert int(pairs["video_ids"][col]) == vid
        f, f2 = clips.sample_frames(i)
        assert pairs["frames"][col].tolist() == [f, f2]
        np.testing.assert_array_equal(pairs["raw"][col].numpy(), clips.frames.get(i, [f, f2]))
    fig = positive_pairs_figure(clips, [2, 7, 11])
    images = shown_images(fig)
    assert len(images) == 5 * 3
    np.testing.assert_array_equal(np.asarray(images[0]), pairs["raw"][0][0].numpy())  # row 0, column 0: frame f
    assert all(fig.axes[r * 3].get_ylabel() for r in range(5))  # every row is labelled


def test_nearest_neighbors_and_the_retrieval_grid():
    memory, queries = random_bank(seed=1, dim=6), random_bank(videos=3, frames=2, seed=2, dim=6)
    index, sims = nearest_neighbors(memory.features, queries.features, 5)
    brute = queries.features @ memory.features.t()
    for i in range(len(queries)):
        assert index[i].tolist() == brute[i].argsort(descending=True)[:5].tolist()
        torch.testing.assert_close(sims[i], brute[i, index[i]])
    fig = retrieval_grid_figure(queries, memory, [0, 4], k=5)
    images = shown_images(fig)
    for r, q in enumerate([0, 4]):
        np.testing.assert_array_equal(np.asarray(images[r * 6]), queries.images[q])
        for j in range(5):
            np.testing.assert_array_equal(np.asarray(images[r * 6 + 1 + j]), memory.images[int(index[q, j])])


def test_confusion_matrix_and_per_class_accuracy():
    true = torch.tensor([0, 0, 1, 1, 1, 2])
    pred = torch.tensor([0, 1, 1, 1, 0, 2])
    cm = confusion_matrix(true, pred, 4)
    assert cm.tolist() == [[1, 1, 0, 0], [1, 2, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    acc = per_class_accuracy(true, pred, 4)
    assert acc[:3].tolist() == pytest.approx([0.5, 2 / 3, 1.0]) and torch.isnan(acc[3])
    fig = confusion_matrix_figure(true, pred, ["a", "b", "c", "d"])
    assert fig.axes[0].get_xlabel() == "predicted class" and fig.axes[0].get_ylabel() == "true class"
    fig = per_class_accuracy_figure(true, {"x": pred}, ["a", "b", "c", "d"])
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert heights == pytest.approx([0.5, 2 / 3, 1.0, 0.0])


def test_knn_explorer_accuracy_is_the_weighted_knn():
    from cckit.eval import knn_predict

    memory, queries = random_bank(seed=1), random_bank(videos=4, seed=2)
    explorer = KnnExplorer(memory, queries, k=5, temperature=0.1)
    pred = knn_predict(memory.features, memory.labels, queries.features, k=5, temperature=0.1, num_classes=5)
    assert explorer.accuracy == pytest.approx(float((pred == queries.labels).float().mean()))
    assert torch.equal(explorer.predictions, pred)
    explorer.k.value = 1
    pred1 = knn_predict(memory.features, memory.labels, queries.features, k=1, temperature=0.1, num_classes=5)
    assert torch.equal(explorer.predictions, pred1) and "k = 1" in explorer.summary.value


def test_floor_lines_of_an_evaluation():
    from cckit.viz import floor_lines
    metrics = {"knn20_top1": 0.6, "knn20_top1_pixels": 0.31, "knn20_top1_random_init": 0.21,
               "knn20_top1_random_init_bn": 0.17, "knn200_top1_pixels": 0.3, "chance": 0.13}
    assert floor_lines(metrics, 20) == {"raw pixels": 0.31, "random init": 0.21, "random init, BN on data": 0.17,
                                        "chance": 0.13}


def test_training_curves_plot_the_logged_values(tmp_path):
    rows = [{"step": s, "loss": 5.0 - s / 10, "loss_intra": 4.0, "intra_top1": s / 20, "lr": 0.1 / s} for s in range(1, 11)]
    knn = [{"step": 0, "knn_top1": 0.2}, {"step": 5, "knn_top1": 0.3}, {"step": 10, "knn_top1": 0.45}]
    rows[4]["knn_top1"], rows[9]["knn_top1"] = 0.3, 0.45
    lines = [json.dumps(knn[0])] + [json.dumps(r) for r in rows]  # the monitor's step-0 row comes first
    (tmp_path / "metrics.jsonl").write_text("".join(line + "\n" for line in lines) + '{"step": 11, "lo')
    fig = training_curves_figure(tmp_path, smoothing=1)
    loss_ax, top1_ax, cycle_ax, lr_ax, knn_ax, notes_ax = fig.axes
    assert "random vectors" in notes_ax.texts[0].get_text()  # why the first cycle-rate readings are high
    np.testing.assert_allclose(knn_ax.lines[0].get_xdata(), [0, 5, 10])
    np.testing.assert_allclose(knn_ax.lines[0].get_ydata(), [r["knn_top1"] for r in knn])
    np.testing.assert_allclose(loss_ax.lines[0].get_ydata(), [r["loss"] for r in rows])
    np.testing.assert_allclose(top1_ax.lines[0].get_xdata(), range(1, 11))
    np.testing.assert_allclose(lr_ax.lines[0].get_ydata(), [r["lr"] for r in rows])
    assert not cycle_ax.lines and "not logged" in cycle_ax.texts[0].get_text()  # intra_video logs no cycle rate
    assert all(ax.get_xlabel() == "step" and ax.get_ylabel() for ax in fig.axes[:5])
    two = training_curves_figure({"a": rows, "b": rows[:5]}, smoothing=1)
    assert len(two.axes[3].lines) == 2


def test_smooth_is_a_trailing_mean():
    np.testing.assert_allclose(smooth([1, 2, 3, 4, 5], 2), [1, 1.5, 2.5, 3.5, 4.5])
    np.testing.assert_allclose(smooth([1, 2, 3], 1), [1, 2, 3])


def test_embedding_maps_and_fallbacks():
    bank = random_bank(videos=6, frames=3)
    xy, used = embed_2d(bank.features[:5], method="umap")
    assert used == "pca" and xy.shape == (5, 2)  # too few points for a neighbourhood graph
    xy, used = embed_2d(bank.features, method="pca")
    centred = (bank.features - bank.features.mean(0)).numpy()
    top = np.linalg.svd(centred, full_matrices=False)[2][:2]
    np.testing.assert_allclose(np.abs(xy), np.abs(centred @ top.T), atol=1e-4)
    xy, used = embed_2d(bank.features, method="tsne")
    assert used == "tsne" and xy.shape == (18, 2) and np.isfinite(xy).all()
    fig = compare_embeddings_figure({"x": bank, "y": bank}, method="pca", thumbnails=4)
    assert set(fig.cckit_coords) == {"x", "y"} and len([a for a in fig.axes if a.collections]) == 2
    assert fig.axes[0].get_xlabel() == "PCA 1"
    np.testing.assert_allclose(np.concatenate([c.get_offsets() for c in fig.axes[0].collections]).mean(0),
                               fig.cckit_coords["x"].mean(0), atol=1e-5)


def test_by_video_highlights_a_few_videos_of_distinct_classes_and_gives_the_video_spread():
    from cckit.diagnostics import video_spread
    from cckit.viz.embedding import bank_groups
    bank = random_bank(videos=10, frames=4, classes=5)
    groups, names, legend = bank_groups(bank, "video", highlight=6)
    picked = [int(bank.video_ids[groups == i][0]) for i in range(6)]
    assert len(set(picked)) == 6 and (groups == -1).sum() == 4 * 4 and legend == "6 of 10 videos"
    assert len({int(bank.labels[bank.video_ids == v][0]) for v in picked[:5]}) == 5  # one per class first
    assert names[0] == f"video {picked[0]} · class c{int(bank.labels[bank.video_ids == picked[0]][0])}"
    fig = compare_embeddings_figure({"x": bank}, color_by="video", method="pca", thumbnails=0)
    ax = fig.axes[0]
    assert f"video spread {video_spread(bank.features, bank.video_ids):.2f}" in ax.get_title()
    assert len(ax.collections) == 7 and len(ax.get_legend().get_texts()) == 6  # grey background + 6 videos


@pytest.mark.slow
def test_umap_map_of_two_separated_classes():
    g = torch.Generator().manual_seed(0)
    a = F.normalize(torch.randn(30, 16, generator=g) * 0.05 + torch.eye(16)[0], dim=1)
    b = F.normalize(torch.randn(30, 16, generator=g) * 0.05 + torch.eye(16)[1], dim=1)
    xy, used = embed_2d(torch.cat([a, b]), method="umap", n_neighbors=10)
    assert used == "umap" and xy.shape == (60, 2)
    ca, cb = xy[:30].mean(0), xy[30:].mean(0)
    spread = max(np.linalg.norm(xy[:30] - ca, axis=1).max(), np.linalg.norm(xy[30:] - cb, axis=1).max())
    assert np.linalg.norm(ca - cb) > spread  # the two classes land apart


def test_cycle_browser_opens_on_the_callers_query_and_support_size():
    banks = {"a": random_bank(seed=0, name="a")}
    # 12 is not among the choices: it is added, so the widget shows what cycle_match(…, 12) shows
    browser = CycleBrowser(banks, support_sizes=(8, 16), temperatures=(0.5,), nn_temperature=0.07, support_size=12,
                           query=7)
    assert browser.support.value == 12 and browser.temperature.value == 0.07 and browser.match.query == 7
    ref = cycle_match(banks["a"], 7, support_size=12, nn_temperature=0.07)
    assert torch.equal(browser.match.support, ref.support) and browser.match.own_video_rank == ref.own_video_rank
    assert [v for _, v in browser.support.options] == [8, 12, 16, 40]


def test_thumbnail_points_keep_their_boxes_apart():
    from cckit.viz.embedding import thumbnail_points
    rng = np.random.default_rng(0)
    # a dense cluster of 200 points at the origin and 5 lone points spread over the map
    coords = np.concatenate([rng.normal(0, 0.01, (200, 2)), [[1, 1], [1, -1], [-1, 1], [-1, -1], [0, 1]]])
    kept = thumbnail_points(coords, 30, gap=(0.1, 0.1))
    extent = np.ptp(coords, axis=0)
    for a in range(len(kept)):
        for b in range(a):
            assert (np.abs(coords[kept[a]] - coords[kept[b]]) >= 0.1 * extent).any()
    assert sum(k < 200 for k in kept) == 1 and len(kept) == 6  # one for the cluster, one for each lone point
    assert len(thumbnail_points(coords[200:], 3)) == 3  # apart already: the first three of the random order
