"""Training objectives: distillation (REALM, ScaleEvent, GEP stage 1) and task heads."""
