"""A user's own network as a zoo network: a Python file with a function that returns a
torch.nn.Module (`my_model.py:build`), or an ONNX file (`model.onnx`). The result is registered
with `zoo.register_network`, so tuning, scoring and the splits see it as they see the zoo's.

Loading a Python file runs it (it is the user's own code, as `python my_model.py` would);
an ONNX file is parsed as protobuf and runs nothing.
"""

from __future__ import annotations

import difflib
import importlib.util
import re
import sys
from pathlib import Path

from .errors import UserError
from .zoo import NETWORKS, NetworkSpec, get_network, register_network

_SHAPE = re.compile(r"\s*\d+\s*([,x]\s*\d+\s*)*")


def parse_shape(text: str, flag: str = "--input-shape") -> tuple[int, ...]:
    """'1,3,224,224' or '1x3x224x224' -> (1, 3, 224, 224); every dimension a positive integer."""
    if not isinstance(text, str) or not _SHAPE.fullmatch(text):
        raise UserError(f"{flag} {text!r}: dimensions as positive integers separated by ',' or 'x', e.g. 1,3,224,224")
    dims = tuple(int(d) for d in re.split(r"[,x]", text.replace(" ", "")))
    if any(d <= 0 for d in dims) or len(dims) > 8:
        raise UserError(f"{flag} {text!r}: 1 to 8 dimensions, each at least 1")
    return dims


def _name_from(path: Path, func: str | None = None) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.]", "_", path.stem if func is None or func == "build" else f"{path.stem}_{func}")
    return stem if stem[:1].isalnum() else f"net_{stem}"


def _python_builder(path: Path, func: str):
    """Import `path` now (a missing function is said before anything slow starts) and return a
    function that calls `func()`, checking it returns a torch module."""
    module_name = f"tensorcost_user_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"{path}: not a Python file that can be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's code: say where it failed, in one line
        raise UserError(f"{path}: importing it failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
    fn = getattr(module, func, None)
    if not callable(fn):
        names = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_") and getattr(v, "__module__", "") == module_name)
        raise UserError(f"{path}: no function {func!r} (functions there: {', '.join(names) or 'none'})")

    def build():
        import torch

        net = fn()
        if not isinstance(net, torch.nn.Module):
            raise UserError(f"{path}:{func}() returned {type(net).__name__}, not a torch.nn.Module")
        return net.eval()

    return build


def _onnx_input(path: Path):
    """(model, graph input name, static shape or None, dtype) of an ONNX file."""
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # a damaged file: protobuf's message is enough
        raise UserError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {str(exc)[:200]})") from None
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise UserError(f"{path}: {len(inputs)} graph inputs ({', '.join(i.name for i in inputs)}); tuning takes a network with one input")
    tensor = inputs[0].type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else 0 for d in tensor.shape.dim]
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name if tensor.elem_type else "float32"
    return model, inputs[0].name, (tuple(dims) if dims and all(d > 0 for d in dims) else None), dtype


def load_network(source: str, input_shape: str | tuple[int, ...] | None = None, name: str | None = None,
                 architecture: str | None = None) -> NetworkSpec:
    """The network `source` names, registered: a zoo name, `file.py:function` (the function
    returns a torch.nn.Module; `input_shape` required) or `file.onnx` (its input shape, unless
    the file leaves a dimension open). `name` defaults to the file's stem; `architecture` is
    its architecture family (default: a family of its own)."""
    shape = parse_shape(input_shape) if isinstance(input_shape, str) else (tuple(input_shape) if input_shape is not None else None)
    if source in NETWORKS and name is None:
        spec = get_network(source)
        if shape is not None and shape != spec.input_shape:
            raise UserError(f"zoo network {source} takes input {spec.input_shape}; choose the zoo variant of that shape or give your own network")
        return spec
    file_part, _, func = source.partition(":") if not source.lower().endswith(".onnx") else (source, "", "")
    path = Path(file_part).expanduser()
    if not path.is_file():
        close = difflib.get_close_matches(source, list(NETWORKS), n=3)
        hint = "" if source.endswith((".py", ".onnx")) or ":" in source else (
            f"; nor is it a zoo network ({'did you mean ' + ', '.join(close) if close else 'e.g. ' + ', '.join(sorted(NETWORKS)[:3])})")
        raise UserError(f"--network {source}: file {path} does not exist{hint}")
    if path.suffix.lower() == ".onnx":
        model, input_name, static, dtype = _onnx_input(path)
        if shape is None and static is None:
            raise UserError(f"{path}: input {input_name!r} has open dimensions; give --input-shape")
        if shape is not None and static is not None and shape != static:
            raise UserError(f"{path}: input {input_name!r} is {static}, not --input-shape {shape}")
        net = name or _name_from(path)
        spec = NetworkSpec(net, net, lambda: model, shape or static, dtype, kind="onnx", input_name=input_name)
    else:
        if path.suffix != ".py":
            raise UserError(f"--network {source}: a Python file with a function (my_model.py:build) or an ONNX file (model.onnx)")
        func = func or "build"
        if not func.isidentifier():
            raise UserError(f"--network {source}: {func!r} is not a Python function name")
        if shape is None:
            raise UserError(f"--network {source}: give --input-shape (e.g. 1,3,224,224): a PyTorch module does not say what it takes")
        net = name or _name_from(path, func)
        spec = NetworkSpec(net, net, _python_builder(path, func), shape)
    return register_network(spec, architecture, replace=True)
