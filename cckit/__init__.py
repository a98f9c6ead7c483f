"""cckit: a research kit for CycleContrast (Wu & Wang, ICCV 2021, arXiv 2105.06463)."""
__version__ = "0.1.0"
