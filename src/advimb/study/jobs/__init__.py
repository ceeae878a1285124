"""The job protocol and its resume helper (``base``), training jobs (``train``) and evaluation
jobs (``evaluate``). A job writes its artifacts into the run folder and a marker with its key."""
