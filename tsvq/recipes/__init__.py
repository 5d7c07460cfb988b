"""Recipes: stage 1 (:mod:`.stage1`), the MaskGIT prior (:mod:`.prior`), the generation
evaluation (:mod:`.generation`, with the FCN evaluator in :mod:`.fcn`), composed from the
engine, the models and the evaluators below them."""
