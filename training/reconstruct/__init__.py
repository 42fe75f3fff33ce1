"""Event-to-image reconstruction (LLM-EvRep): data, losses, judges, training, evaluation.

``event-fm train reconstruct data|fit|evaluate|report``; see docs/reconstruction.md.
"""
