"""bfloat16 convolution trunks, float32 geometry: the networks' precision policy written into an OpenVINO model.

On the torch path ``--dtype bfloat16`` runs the convolution trunks (convolutions, their normalisation,
activations, pooling, upsampling, pixel shuffles and skip concatenations) in bfloat16 and keeps the TPS solve,
heatmaps, grids, every ``grid_sample``, the softmax, sigmoids and blends in float32
(:mod:`tpsmm.core.networks.precision`). OpenVINO's own bfloat16 mode (the ``INFERENCE_PRECISION_HINT``
``bf16``) instead rounds every op, grid coordinates included: a bf16 coordinate near 1 is off by up to
2⁻⁸ of the half-width (half a pixel at 256²), which costs about 25 dB (33.8 dB PSNR against float32 on
the vox-256 architecture, against 58 dB with this policy).

:func:`bf16_trunks` writes the policy into the graph. A node belongs to a *trunk* when it is a
convolution, or an op of :data:`TRUNK_OPS` that lies on a path from a convolution's output to a
convolution's input through such ops only. Trunk nodes compute in bfloat16: a ``Convert(bf16)`` is put
on every float input a trunk node gets from outside the trunk (weights and other constants are folded
at compile time) and a ``Convert(f32)`` on every output that leaves it. The model is then compiled with
the float32 hint, so OpenVINO keeps everything else in float32 and runs the trunks with its bf16 kernels
(AVX512-BF16 / AMX).

The graph's inputs and outputs stay float32, with the same names and shapes.
"""
from __future__ import annotations

__all__ = ["CONVOLUTIONS", "TRUNK_OPS", "bf16_trunks"]

CONVOLUTIONS = ("Convolution", "GroupConvolution", "ConvolutionBackpropData", "GroupConvolutionBackpropData")
"""Op types that start and end a trunk; their data and weight inputs (ports 0, 1) become bfloat16."""

TRUNK_OPS = {
    "MVN": (0,), "Relu": (0,), "Clamp": (0,), "Add": (0, 1), "Multiply": (0, 1), "Subtract": (0, 1),
    "AvgPool": (0,), "MaxPool": (0,), "Interpolate": (0,), "Pad": (0, 3), "Concat": None,
    "Reshape": (0,), "Squeeze": (0,), "Unsqueeze": (0,), "Transpose": (0,),
    "DepthToSpace": (0,), "Slice": (0,), "StridedSlice": (0,),
}
"""Op type -> its float data ports (``None``: every input) for ops that may run inside a trunk in bfloat16.
Other ports (shapes, axes, sizes, scales) keep their type."""


def _float_ports(node) -> tuple[int, ...]:
    ports = TRUNK_OPS.get(node.get_type_name(), (0, 1))
    return tuple(range(node.get_input_size())) if ports is None else tuple(p for p in ports
                                                                             if p < node.get_input_size())


def _trunk(model, f32) -> set:
    """The trunk nodes of ``model`` (see the module docstring), as a set of nodes."""
    convs = [n for n in model.get_ordered_ops()
             if n.get_type_name() in CONVOLUTIONS and n.get_output_element_type(0) == f32]
    passable = lambda n: n.get_type_name() in TRUNK_OPS and n.get_output_element_type(0) == f32  # noqa: E731
    forward, stack = set(), list(convs)
    while stack:                                    # reachable from a convolution's output
        for out in stack.pop().outputs():
            for target in out.get_target_inputs():
                node = target.get_node()
                if node not in forward and passable(node):
                    forward.add(node)
                    stack.append(node)
    backward, stack = set(), [c.input_value(0).get_node() for c in convs]
    while stack:                                    # reaching a convolution's input
        node = stack.pop()
        if node in backward or not passable(node):
            continue
        backward.add(node)
        stack.extend(node.input_value(p).get_node() for p in _float_ports(node))
    return set(convs) | (forward & backward)


def bf16_trunks(ov, model) -> int:
    """Rewrite ``model`` (an ``openvino.Model``, changed in place) so its convolution trunks compute in bfloat16.

    Args:
        ov: the imported ``openvino`` module.
        model: the model as read from an exported ``.onnx`` (float32 throughout).

    Returns:
        How many nodes now run in bfloat16 (0 leaves the model unchanged).
    """
    from openvino import opset13 as ops

    bf16, f32 = ov.Type.bf16, ov.Type.f32
    trunk = _trunk(model, f32)
    for node in trunk:
        for port in _float_ports(node):
            source = node.input_value(port)
            if source.get_node() not in trunk and source.get_element_type() == f32:
                node.input(port).replace_source_output(ops.convert(source, bf16).output(0))
    for node in trunk:
        for out in node.outputs():
            leaving = [t for t in out.get_target_inputs() if t.get_node() not in trunk]
            if leaving:
                back = ops.convert(out, f32).output(0)
                for target in leaving:
                    target.replace_source_output(back)
    if trunk:
        model.validate_nodes_and_infer_types()
    return len(trunk)
