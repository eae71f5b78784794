"""An external model package for symaffect: a shallow ConvNet brought in from outside.

Nothing here is imported by symaffect itself. Put this folder on ``sys.path`` (or
install a package laid out like it) and use the model by import path::

    SYMAFFECT_TRUSTED_MODELS=symaffect_shallow:ShallowAffect symaffect predict RUN rec.csv
    symaffect train --data DEAP --out RUN --model symaffect_shallow:ShallowAffect

or declare it as an entry point of group ``symaffect.models`` (see README.md).
"""

from symaffect_shallow.adapter import PlainNetAffect
from symaffect_shallow.shallow import ShallowAffect, ShallowNet

__all__ = ["PlainNetAffect", "ShallowAffect", "ShallowNet"]
