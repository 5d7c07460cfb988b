"""Plots and tables of a run directory (:mod:`.plots`, :mod:`.tables`); matplotlib loads on first use."""
