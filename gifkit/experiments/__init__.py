"""The studies behind the notebooks: the study grid (``study``), the mini experiment (``mini``), preliminary studies,
paper tables, plots, statistics, the notebook runner, and the experiments' commands (``commands``)."""
