"""``puppet-master curate``: keep part-level animations, reject static, rigid or jerky ones.

Puppet-Master learns part-level motion, so its data are filtered: an object that does not move,
or only moves as a whole (turntables, a crate sliding), teaches nothing about parts.

Decision for each render folder, in this order (the first that applies decides):

1. a human label (``--labels``, CSV ``asset,label`` with label ``keep`` or ``reject``; ``asset`` is
   the folder path as given or its name) is ground truth for that asset;
2. the rules below reject an asset with every reason that applies (hard constraints: a classifier
   trained on few labels must not bring back a static or rigid animation);
3. a RandomForest trained on the labelled assets of this run (when both labels occur) rejects
   assets with ``P(keep) < 0.5``; its cross-validated accuracy is reported when there are at least
   ``MIN_LABELS_FOR_CV`` labels and ``MIN_PER_CLASS_FOR_CV`` of each label;
4. the optional judge (``--judge``, see ``judges.py``) has the last word on what is still kept.

Rules (features in ``features.py``; lengths in object sizes, time in frames):

- ``static``: no point moves more than ``STATIC_MOTION`` (2 %);
- ``tiny moving part``: fewer than ``MIN_MOVING_FRACTION`` (1 %) of the points move;
- ``whole-object rigid motion``: one rigid transform per frame explains all but ``RIGID_RESIDUAL``
  (10 %) of the motion;
- ``too jerky``: the moving points' mean third difference exceeds ``MAX_JERK`` (0.03 per frame^3);
  smooth keyframed motion is around 0.005, a track that jumps every frame 0.05 and more.

Outputs in ``--out``: ``kept.txt`` (one folder per line), ``rejected.txt`` (``folder<TAB>reasons``),
``features.csv`` (features, decision and reasons per folder) and ``classifier.json`` when one was trained.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
from pathlib import Path
from typing import Any

import numpy as np

from .features import FEATURE_NAMES, animation_features
from .files import write_json_atomic, write_text_atomic
from .judges import JUDGES, AnimationJudge, make_judge

logger = logging.getLogger(__name__)

STATIC_MOTION = 0.02
MIN_MOVING_FRACTION = 0.01
RIGID_RESIDUAL = 0.10
MAX_JERK = 0.03
MIN_LABELS_FOR_CV = 10
MIN_PER_CLASS_FOR_CV = 3
LABELS = ("keep", "reject")


def load_features(render_dir: Path) -> dict[str, float]:
    """Features of one render folder from ``points.npz`` and every ``view_*/visibility.npy``."""
    points = render_dir / "points.npz"
    if not points.is_file():
        raise FileNotFoundError(f"{render_dir} has no points.npz: run render-animations on it first")
    with np.load(points) as data:
        positions = data["positions"]
    visibilities = [np.load(path) for path in sorted(render_dir.glob("view_*/visibility.npy"))]
    return animation_features(positions, visibilities)


def rule_reasons(features: dict[str, float]) -> list[str]:
    """Every rule that rejects an animation, as readable reasons (empty: the rules keep it)."""
    reasons = []
    if features["motion_max"] < STATIC_MOTION:
        reasons.append(f"static (largest motion {features['motion_max']:.3f} < {STATIC_MOTION} object sizes)")
    elif features["moving_fraction"] < MIN_MOVING_FRACTION:
        reasons.append(f"tiny moving part ({features['moving_fraction']:.1%} of points move)")
    elif features["rigid_residual"] < RIGID_RESIDUAL:
        residual = features["rigid_residual"]
        reasons.append(f"whole-object rigid motion (residual after a rigid fit {residual:.3f} < {RIGID_RESIDUAL})")
    if features["jerk"] > MAX_JERK:
        reasons.append(f"too jerky (jerk {features['jerk']:.3f} > {MAX_JERK})")
    return reasons


def read_labels(path: Path) -> dict[str, str]:
    """``asset -> keep|reject`` from a CSV with columns ``asset,label``."""
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"asset", "label"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: labels CSV needs the columns asset,label, found {reader.fieldnames}")
        labels = {}
        for line, row in enumerate(reader, start=2):
            label = row["label"].strip().lower()
            if label not in LABELS:
                raise ValueError(f"{path}:{line}: label must be keep or reject, got {row['label']!r}")
            labels[row["asset"].strip()] = label
    return labels


def label_for(asset: str, labels: dict[str, str]) -> str | None:
    """The label of a render folder, matched by the path as given, its resolved path, or its name."""
    for key in (asset, str(Path(asset).resolve()), Path(asset).name):
        if key in labels:
            return labels[key]
    return None


def train_classifier(features: list[dict[str, float]], labels: list[str], seed: int = 0):
    """A RandomForest on labelled features, and its cross-validated accuracy (None when too few labels)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    x = np.array([[row[name] for name in FEATURE_NAMES] for row in features])
    y = np.array([label == "keep" for label in labels])
    classifier = RandomForestClassifier(n_estimators=200, class_weight="balanced", random_state=seed)
    accuracy = None
    smallest_class = min(int(y.sum()), int((~y).sum()))
    if len(y) >= MIN_LABELS_FOR_CV and smallest_class >= MIN_PER_CLASS_FOR_CV:
        folds = StratifiedKFold(n_splits=min(5, smallest_class), shuffle=True, random_state=seed)
        accuracy = float(cross_val_score(classifier, x, y, cv=folds).mean())
    return classifier.fit(x, y), accuracy


def decide(
    assets: list[str], features: list[dict[str, float]], labels: dict[str, str], judge: AnimationJudge
) -> tuple[list[list[str]], dict[str, Any] | None]:
    """Reasons to reject each asset (empty list: kept), in the order of the module docstring.

    Also returns the classifier's report (labels used, cross-validated accuracy), None if none was trained.
    """
    known = [(index, label_for(asset, labels)) for index, asset in enumerate(assets)]
    known = [(index, label) for index, label in known if label is not None]
    classifier = report = None
    if len({label for _, label in known}) == 2:
        classifier, accuracy = train_classifier([features[i] for i, _ in known], [label for _, label in known])
        logger.info("classifier on %d labels, cross-validated accuracy %s", len(known), accuracy)
        report = {"labels": len(known), "cv_accuracy": accuracy, "features": list(FEATURE_NAMES)}
    elif known:
        logger.info("labels hold only %r: no classifier trained", known[0][1])
    decisions = []
    for asset, row in zip(assets, features, strict=True):
        label = label_for(asset, labels)
        if label is not None:
            decisions.append([] if label == "keep" else ["labelled reject"])
            continue
        reasons = rule_reasons(row)
        if not reasons and classifier is not None:
            keep_probability = float(classifier.predict_proba([[row[name] for name in FEATURE_NAMES]])[0, 1])
            if keep_probability < 0.5:
                reasons.append(f"classifier (P(keep) = {keep_probability:.2f})")
        if not reasons:
            keep, reason = judge.judge(Path(asset), row)
            if not keep:
                reasons.append(f"judge: {reason}")
        decisions.append(reasons)
    return decisions, report


def write_outputs(out: Path, assets: list[str], features: list[dict[str, float]], decisions: list[list[str]]) -> None:
    """``kept.txt``, ``rejected.txt`` and ``features.csv`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    kept = [asset for asset, reasons in zip(assets, decisions, strict=True) if not reasons]
    rejected = [f"{asset}\t{'; '.join(reasons)}" for asset, reasons in zip(assets, decisions, strict=True) if reasons]
    write_text_atomic(out / "kept.txt", "".join(f"{line}\n" for line in kept))
    write_text_atomic(out / "rejected.txt", "".join(f"{line}\n" for line in rejected))
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["asset", *FEATURE_NAMES, "decision", "reasons"])
    for asset, row, reasons in zip(assets, features, decisions, strict=True):
        values = [f"{row[name]:.6g}" for name in FEATURE_NAMES]
        writer.writerow([asset, *values, "reject" if reasons else "keep", "; ".join(reasons)])
    write_text_atomic(out / "features.csv", table.getvalue())


def main(args: argparse.Namespace) -> int:
    """Handler of ``curate``."""
    judge = make_judge(args.judge)
    labels = read_labels(Path(args.labels)) if args.labels else {}
    assets = list(args.render_dirs)
    features = [load_features(Path(asset)) for asset in assets]
    decisions, report = decide(assets, features, labels, judge)
    out = Path(args.out)
    write_outputs(out, assets, features, decisions)
    if report is not None:
        write_json_atomic(out / "classifier.json", report)
    kept = sum(not reasons for reasons in decisions)
    accuracy = "" if report is None or report["cv_accuracy"] is None else f", CV accuracy {report['cv_accuracy']:.2f}"
    print(f"{out}: kept {kept} of {len(assets)} animations{accuracy}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``curate`` on the ``puppet-master`` CLI."""
    parser = subparsers.add_parser("curate", help="keep part-level animations, reject static/rigid/jerky ones")
    parser.add_argument("render_dirs", nargs="+", metavar="RENDER_DIR", help="render-animations output folders")
    parser.add_argument("--out", required=True, help="folder for kept.txt, rejected.txt, features.csv")
    parser.add_argument("--labels", default=None, help="CSV asset,label (keep|reject) to train the classifier")
    parser.add_argument("--judge", choices=sorted(JUDGES), default="none", help="optional extra judge")
    parser.set_defaults(handler=main)
