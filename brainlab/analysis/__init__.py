"""Analysis of cohorts and models: pure numpy / scikit-learn / scipy functions.

- ``metrics``: held-out metrics (SSIM/PSNR, GAN PCA-Fréchet, two-sample AUC,
  diversity, classifier and brain-age metrics).
- ``memorisation``: nearest-training-image distances of generated samples.
- ``probes``: cross-validated probe table (sex, age bin x raw vs latent).
- ``projections``: PCA / UMAP maps of a representation.
- ``directions``: InterFaceGAN-style attribute directions and edits.
- ``interpolation``: lerp / slerp paths between latents.
- ``means``: streaming group mean images and difference maps.

Submodules are imported on use (``from brainlab.analysis.metrics import psnr``),
so importing this package stays cheap.
"""
