"""Faces: detection (``detect``, kornia's YuNet), training-style framing (``framing``) and one still box for a
driving clip (``track``)."""
