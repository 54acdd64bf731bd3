"""The training runtime: ``fit`` (the loop), ``evaluation`` (evaluate, predict), ``checkpoints``, ``history``,
``recipes`` (the course's default recipe), ``device`` and ``distributed`` (where it runs), ``threads`` (CPU
thread counts) and ``modes`` (``eval_mode``). Nothing here knows the course: the subject is in the modules above."""
