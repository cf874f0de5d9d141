"""``tpsmm render`` on real ComfyUI: node schemas (:mod:`.schemas`), prompts and validation (:mod:`.prompt`),
the HTTP/WebSocket client (:mod:`.client`, :mod:`.ws`; every exchange bounded in time and size by
:mod:`.exchange`), result files (:mod:`.files`), several servers
(:mod:`.fleet`), ComfyUI started here (:mod:`.launcher`) and the command line (:mod:`.cli`).

Nothing here is imported when ComfyUI loads the node pack.
"""
