"""Motion forecasting (E-Motion style): future event-voxel frames from past ones.

data (recordings -> voxel-frame sequences), fit (the diffusion forecaster and the SimVP-style
baseline), guided sampling (E-Motion Algorithm 2), align (reward fine-tuning with clipped policy
gradients and a KL term), evaluate/report. The denoiser itself lives in
:mod:`event_fm.models.forecast` so the nodes can load it without the training module.
"""
