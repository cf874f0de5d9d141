"""Synthetic training data: procedurally drawn characters whose motion is known exactly.

``dataset`` writes a folder of clips (``tpsmm make-dataset``); ``character`` samples and renders one character;
``rig`` is its skeleton and motion; ``raster`` the tiny anti-aliased painter it is drawn with.
"""
