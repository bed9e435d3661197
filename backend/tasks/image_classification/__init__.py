"""Image classification: read a zip of class folders, report on it, train a CNN or fine-tune a
pretrained vision model, evaluate and predict.

Registered in backend/tasks/registry.py (task.py): the app and the CLI reach it through the Task.

    reading.py   zip of class folders / table of paths -> rows (image bytes, label, size, sha256)
    archive.py   the zip checked as hostile input (zip slip, bombs, nested archives, names)
    images.py    bytes -> upright RGB with Pillow (EXIF, modes, frames, decompression bombs)
    prepare.py   check, split, hash, store as Parquet
    report.py    the validation report (counts, sizes, duplicates, thumbnails, blocking errors)
    config.py    the templates' configs (cnn, efficientnet-lite0, vit)
    cnn.py / efficientnet.py / pretrained.py   the three templates (from scratch; bundled ImageNet
                 EfficientNet-Lite0, offline; any transformers folder or Hub id); model.py the classifier they share
    batches.py   torch Dataset + DataLoader (decoding in workers), Kornia augmentation
    metrics.py   accuracy, macro P/R/F1, per class, confusion matrix, misclassified images
    task.py      the Task the rest of the app asks; ingest.py its `prepare` (-> the shared store)
    training.py  build_classifier, and its part of the shared epochs strategy (backend/training/epochs.py)
    estimate.py / card.py / predictor.py / review.py   Estimate, model card, file predictor, mistakes gallery
"""
