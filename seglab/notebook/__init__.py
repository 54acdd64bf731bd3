"""What the notebooks show: ``viz`` (masks, overlays, galleries), ``curves`` (training curves), ``draw``
(schematics), ``widgets`` (explorers), ``quiz`` with its ``questions`` (notebook 00's self-test) and ``tables``
(every table seglab prints)."""
