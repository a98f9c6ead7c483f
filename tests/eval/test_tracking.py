"""OTB metrics against hand-computed cases, the OTB file format, and the SiamFC tracker on a moving square."""
import numpy as np
import pytest
import torch
from PIL import Image

from cckit.errors import DataError
from cckit.eval.otb import (center_error, find_otb_sequences, load_otb_sequence, otb_metrics, overlap, plot_otb,
                            read_otb_boxes, scaled_precision_threshold, sequence_curves, xyxy_to_xywh)
from cckit.eval.tracking import SiamFCConfig, SiamFCTracker, crop_resize, track, track_many
from cckit.model import build_backbone


def test_center_error_and_iou_on_hand_made_boxes():
    gt = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], float)
    pred = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [0, 0, 5, 5], [30, 40, 10, 10]], float)
    np.testing.assert_allclose(center_error(pred, gt), [0.0, 5.0, np.hypot(2.5, 2.5), 50.0])
    # identical; half-shifted: 50 / 150; contained quarter: 25 / 100; disjoint
    np.testing.assert_allclose(overlap(pred, gt), [1.0, 1 / 3, 0.25, 0.0])
    np.testing.assert_allclose(xyxy_to_xywh([[1, 2, 4, 8]]), [[1, 2, 3, 6]])
    assert overlap([[0, 0, 0, 0]], [[0, 0, 0, 0]])[0] == 0.0  # empty boxes: no division by zero


def test_tracker_that_follows_the_ground_truth_scores_precision_one_and_auc_20_of_21():
    rng = np.random.default_rng(0)
    gt = np.concatenate([rng.uniform(0, 50, (30, 2)), rng.uniform(5, 20, (30, 2))], axis=1)
    m = otb_metrics([(gt.copy(), gt), (gt[:7].copy(), gt[:7])])
    assert m["precision"] == 1.0
    # success counts IoU > o for o in 0, 0.05, ..., 1: IoU = 1 passes all but o = 1
    assert m["success_auc"] == pytest.approx(20 / 21)
    assert m["mean_iou"] == pytest.approx(1.0) and m["mean_center_error"] == 0.0


def test_auc_and_precision_of_a_known_overlap_curve():
    gt = np.array([[0, 0, 10, 10]] * 3, float)
    pred = np.array([[0, 0, 10, 10],  # IoU 1, error 0
                     [0, 0, 10, 5],  # IoU 0.5, error 2.5
                     [100, 0, 10, 10]], float)  # IoU 0, error 100
    curves = sequence_curves(pred, gt)
    np.testing.assert_allclose(curves["ious"], [1.0, 0.5, 0.0])
    # thresholds 0..1 step .05: IoU 1 passes 20 of 21, IoU 0.5 passes 0..0.45 (10), IoU 0 none
    m = otb_metrics([(pred, gt)], threshold=20.0)
    assert m["success_auc"] == pytest.approx((20 + 10 + 0) / (3 * 21))
    assert m["precision"] == pytest.approx(2 / 3)
    assert otb_metrics([(pred, gt)], threshold=2.5)["precision"] == pytest.approx(2 / 3)  # error <= t counts
    assert otb_metrics([(pred, gt)], threshold=2.4)["precision"] == pytest.approx(1 / 3)
    assert m["success_curve"][10] == pytest.approx(1 / 3) and m["success_curve"][9] == pytest.approx(2 / 3)


def test_curves_average_per_sequence_skip_first_and_invalid_frames():
    gt = np.array([[0, 0, 10, 10]] * 4, float)
    good = gt.copy()
    bad = np.array([[0, 0, 10, 10]] + [[100, 100, 10, 10]] * 3, float)
    # sequence 1 all right (1.0), sequence 2 right on frame 0 only (0.25): mean 0.625, not the frame mean
    assert otb_metrics([(good, gt), (bad, gt)])["precision"] == pytest.approx(0.625)
    assert otb_metrics([(good, gt), (bad, gt)], skip_first=True)["precision"] == pytest.approx(0.5)
    gt_invalid = gt.copy()
    gt_invalid[1:] = [0, 0, 0, 0]  # OTB marks a missing target with a zero box
    m = otb_metrics([(bad, gt_invalid)])
    assert m["frames"] == 1 and m["precision"] == 1.0


def test_precision_threshold_scales_with_the_frame_size():
    assert scaled_precision_threshold(480, 640) == 20.0
    assert scaled_precision_threshold(64, 64) == pytest.approx(20 * 64 / 480)
    m = otb_metrics([(np.zeros((1, 4)) + [0, 0, 4, 4], np.array([[2.0, 0, 4, 4]]))], threshold=2.0)
    assert m["threshold"] == 2.0 and m["precision"] == 1.0 and m["precision_thresholds"][20] == 2.0


def test_read_otb_boxes_accepts_comma_tab_and_space_and_converts_to_0_based(tmp_path):
    f = tmp_path / "gt.txt"
    f.write_text("11,21,30,40\n12\t22\t31\t41\n13 23 32 42\n\n")
    np.testing.assert_allclose(read_otb_boxes(f), [[10, 20, 30, 40], [11, 21, 31, 41], [12, 22, 32, 42]])
    f.write_text("1,2,3\n")
    with pytest.raises(DataError, match="line 1 has 3 values"):
        read_otb_boxes(f)


def _otb_sequence(root, name, n_frames, n_boxes, gt_name="groundtruth_rect.txt"):
    seq = root / name
    (seq / "img").mkdir(parents=True)
    for i in range(n_frames):
        Image.fromarray(np.full((24, 32, 3), i * 10, np.uint8)).save(seq / "img" / f"{i + 1:04d}.jpg")
    (seq / gt_name).write_text("".join(f"{i + 1},{i + 2},5,6\n" for i in range(n_boxes)))
    return seq


def test_otb_sequence_loader_and_discovery(tmp_path):
    _otb_sequence(tmp_path, "Basketball", 5, 4)
    _otb_sequence(tmp_path, "Jogging", 3, 3, gt_name="groundtruth_rect.1.txt")
    (tmp_path / "notes").mkdir()
    seqs = find_otb_sequences(tmp_path)
    assert [s.name for s in seqs] == ["Basketball", "Jogging"]
    frames, boxes = load_otb_sequence(seqs[0])
    assert [p.name for p in frames] == ["0001.jpg", "0002.jpg", "0003.jpg", "0004.jpg"]  # shorter of the two wins
    np.testing.assert_allclose(boxes[1], [1, 2, 5, 6])
    assert len(load_otb_sequence(seqs[1])[0]) == 3
    with pytest.raises(DataError, match="no OTB sequences"):
        find_otb_sequences(tmp_path / "notes")


def test_crop_resize_is_an_exact_slice_inside_and_fills_outside():
    image = torch.arange(3 * 10 * 10, dtype=torch.float32).view(3, 10, 10)
    fill = torch.tensor([-1.0, -2.0, -3.0])
    torch.testing.assert_close(crop_resize(image, (4.0, 5.0), 5, 5, fill), image[:, 2:7, 3:8])
    out = crop_resize(image, (0.0, 0.0), 4, 4, fill)  # rows/cols -2..1 (rounded from -1.5)
    torch.testing.assert_close(out[:, 2:, 2:], image[:, :2, :2])
    assert torch.equal(out[:, 0, 0], fill)


def _moving_square(num_frames=8, size=64, side=14, step=(2, 3)):
    frames, boxes = [], []
    for t in range(num_frames):
        x, y = 12 + step[0] * t, 14 + step[1] * t
        frame = np.full((size, size, 3), 30, np.uint8)
        frame[y:y + side, x:x + side] = (230, 200, 40)
        frame[y + 3:y + 7, x + 3:x + 7] = (20, 20, 200)  # an asymmetric mark
        frames.append(frame)
        boxes.append([x, y, side, side])
    return np.stack(frames), np.array(boxes, float)


def test_siamfc_follows_a_moving_square_and_beats_a_static_box():
    torch.manual_seed(0)
    net, _ = build_backbone("resnet10")
    frames, gt = _moving_square()
    tracker = SiamFCTracker(net.eval(), SiamFCConfig(layer="layer2", exemplar_size=48, search_size=96))
    pred = track(tracker, frames, gt[0])
    assert pred.shape == gt.shape and np.array_equal(pred[0], gt[0])
    err = center_error(pred, gt)[1:]
    static_err = center_error(np.repeat(gt[:1], len(gt), 0), gt)[1:]
    assert err.mean() < 2.0 < static_err.mean()  # the square moves 3.6 px per frame
    assert overlap(pred, gt)[1:].min() > 0.6


def test_siamfc_on_a_still_video_stays_put():
    torch.manual_seed(0)
    net, _ = build_backbone("resnet10")
    frames, gt = _moving_square(num_frames=5, step=(0, 0))
    pred = track(SiamFCTracker(net.eval(), SiamFCConfig()), frames, gt[0])
    assert center_error(pred, gt).max() <= 1.0


def test_track_many_in_lockstep_equals_tracking_one_by_one():
    torch.manual_seed(0)
    net, _ = build_backbone("resnet10")
    sequences = [_moving_square(num_frames=n, step=st) for n, st in ((6, (2, 3)), (3, (-1, 2)), (5, (3, 0)))]
    cfg = SiamFCConfig(exemplar_size=32, search_size=64)
    many = track_many(net, sequences, cfg, chunk=2)
    for (frames, gt), got in zip(sequences, many):
        np.testing.assert_allclose(got, track(SiamFCTracker(net, cfg), frames, gt[0]), atol=1e-4)


def test_plot_otb_writes_a_png(tmp_path):
    gt = np.array([[0, 0, 10, 10]] * 3, float)
    m = otb_metrics([(gt, gt)])
    assert plot_otb({"a": m, "b": m}, tmp_path / "otb.png", title="t").stat().st_size > 1000
