"""Read ``torch.save`` files (``.pth`` / ``.pt``) without PyTorch and without running pickled code.

Two on-disk formats are understood:

* the zip format (PyTorch >= 1.6): a zip archive ``<prefix>/data.pkl`` holding the object pickle,
  one member ``<prefix>/data/<key>`` per storage with its raw bytes, and an optional
  ``<prefix>/byteorder`` record (``little`` when absent);
* the legacy stream format (``_use_new_zipfile_serialization=False`` and every release before
  1.6): five pickles in a row (magic number, protocol version 1001, system info, the object, the
  list of storage keys) followed, for each key in that order, by an 8-byte element count and the
  storage's raw bytes.

The pickles are interpreted by a small stack machine of our own, fed by
:func:`pickletools.genops`, so no ``find_class`` of the standard unpickler is involved and nothing
is ever imported. A global (``module.name``) resolves to a harmless stand-in from a fixed
allow-list (tensor rebuild functions, storage and dtype markers, ``OrderedDict``, a few builtin
containers) or else to an :class:`UnsupportedObject` that records what the file tried to do with
it. Tensors and parameters become C-contiguous numpy arrays that own their memory.
"""
from __future__ import annotations

import collections
import contextlib
import io
import os
import pickletools
import struct
import zipfile
from typing import Any, Callable

import ml_dtypes
import numpy as np

__all__ = ["TorchFileError", "UnsupportedObject", "load_torch_file", "read_state_dict"]

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001
_ZIP_SIGNATURE = b"PK\x03\x04"


# ----------------------------------------------------------------------------------------------
# Public types
# ----------------------------------------------------------------------------------------------


class TorchFileError(Exception):
    """A checkpoint could not be read; the message always starts with the file's name."""

    def __init__(self, source_name: str, detail: str):
        super().__init__(f"{source_name}: {detail}")
        self.source_name = source_name
        self.detail = detail


class _CorruptPickle(Exception):
    """The pickle stream is structurally invalid for a torch file."""


class UnsupportedObject:
    """Stand-in for a pickled global outside the allow-list, and for anything built from one.

    The global is never imported and never called. Calling a stand-in (pickle's REDUCE, NEWOBJ,
    INST, OBJ) returns a new stand-in with the same ``qualname`` that records the arguments;
    BUILD records ``state``; APPEND(S) and SETITEM(S) record ``list_items`` / ``dict_items``.

    Attributes:
      qualname: dotted name of the global, e.g. ``"argparse.Namespace"`` (Python 2 module names
        that protocol 2 writes, ``__builtin__`` and ``copy_reg``, are given their Python 3 names).
      call_args: ``None`` for the bare global, else the positional arguments of the attempted call.
      call_kwargs: keyword arguments of the attempted call (NEWOBJ_EX only).
      state: the last state a BUILD opcode tried to apply, or ``None``.
      list_items: items appended to it.
      dict_items: ``(key, value)`` pairs assigned to it.
    """

    def __init__(self, qualname: str, call_args: tuple | None = None,
                 call_kwargs: dict | None = None):
        self.qualname = qualname
        self.call_args = call_args
        self.call_kwargs = dict(call_kwargs or {})
        self.state: Any = None
        self.list_items: list = []
        self.dict_items: list[tuple[Any, Any]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> "UnsupportedObject":
        """Record an attempted call; nothing is executed."""
        return UnsupportedObject(self.qualname, call_args=args, call_kwargs=kwargs)

    def __repr__(self) -> str:
        if self.call_args is None:
            return f"<UnsupportedObject {self.qualname}>"
        return f"<UnsupportedObject {self.qualname}(...)>"


# ----------------------------------------------------------------------------------------------
# Allow-list: markers and safe callables that globals resolve to
# ----------------------------------------------------------------------------------------------


class _StorageType:
    """Marker for a storage class such as ``torch.FloatStorage`` (``dtype`` None: untyped bytes)."""

    def __init__(self, qualname: str, dtype: np.dtype | None):
        self.qualname = qualname
        self.dtype = dtype

    def __repr__(self) -> str:
        return f"<storage type {self.qualname}>"


class _TensorType:
    """Marker for ``torch.Tensor`` / ``torch.nn.parameter.Parameter`` as a type argument."""

    def __init__(self, qualname: str):
        self.qualname = qualname

    def __repr__(self) -> str:
        return f"<tensor type {self.qualname}>"


class _SafeCallable:
    """An allow-listed function the pickle may call, with the qualname it was loaded under."""

    def __init__(self, qualname: str, function: Callable[..., Any]):
        self.qualname = qualname
        self.function = function

    def __repr__(self) -> str:
        return f"<allowed {self.qualname}>"


_STORAGE_DTYPES: dict[str, np.dtype | None] = {
    "FloatStorage": np.dtype(np.float32),
    "DoubleStorage": np.dtype(np.float64),
    "HalfStorage": np.dtype(np.float16),
    "BFloat16Storage": np.dtype(ml_dtypes.bfloat16),
    "LongStorage": np.dtype(np.int64),
    "IntStorage": np.dtype(np.int32),
    "ShortStorage": np.dtype(np.int16),
    "CharStorage": np.dtype(np.int8),
    "ByteStorage": np.dtype(np.uint8),
    "BoolStorage": np.dtype(np.bool_),
    "ComplexFloatStorage": np.dtype(np.complex64),
    "ComplexDoubleStorage": np.dtype(np.complex128),
    "UntypedStorage": None,
}

_TORCH_DTYPES: dict[str, np.dtype] = {
    **{alias: np.dtype(np.float32) for alias in ("float32", "float")},
    **{alias: np.dtype(np.float64) for alias in ("float64", "double")},
    **{alias: np.dtype(np.float16) for alias in ("float16", "half")},
    "bfloat16": np.dtype(ml_dtypes.bfloat16),
    **{alias: np.dtype(np.int64) for alias in ("int64", "long")},
    **{alias: np.dtype(np.int32) for alias in ("int32", "int")},
    **{alias: np.dtype(np.int16) for alias in ("int16", "short")},
    "int8": np.dtype(np.int8),
    "uint8": np.dtype(np.uint8),
    "uint16": np.dtype(np.uint16),
    "uint32": np.dtype(np.uint32),
    "uint64": np.dtype(np.uint64),
    "bool": np.dtype(np.bool_),
    **{alias: np.dtype(np.complex64) for alias in ("complex64", "cfloat")},
    **{alias: np.dtype(np.complex128) for alias in ("complex128", "cdouble")},
    **{name: np.dtype(getattr(ml_dtypes, name))
       for name in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")},
}

# Modules whose storage classes appear in persistent ids (cuda aliases only in very old files).
_STORAGE_MODULES = ("torch", "torch.storage", "torch.cuda")
# Protocol-2 pickles written by Python 3 use the Python 2 module names of a few builtins.
_PYTHON2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


class _Storage:
    """The raw bytes of one serialized storage, turned into typed elements on demand.

    ``declared_dtype`` is the element type named by the persistent id (``None`` for untyped
    byte storages); handles made by :meth:`typed` share the bytes and the decoded cache.
    """

    def __init__(self, key: str, raw: bytes | memoryview, big_endian: bool,
                 declared_dtype: np.dtype | None = None,
                 decoded: dict[np.dtype, np.ndarray] | None = None):
        self.key = key
        self.raw = memoryview(raw).cast("B")
        self.big_endian = big_endian
        self.declared_dtype = declared_dtype
        self._decoded = {} if decoded is None else decoded

    def typed(self, storage_type: "_StorageType") -> "_Storage":
        """A handle on the same bytes declared with ``storage_type``'s element type."""
        return _Storage(self.key, self.raw, self.big_endian, storage_type.dtype, self._decoded)

    def elements(self, dtype: np.dtype) -> np.ndarray:
        """The storage as a 1-D array of ``dtype`` in native byte order (read-only)."""
        if dtype not in self._decoded:
            self._decoded[dtype] = _decode_elements(self.raw, dtype, self.big_endian)
        return self._decoded[dtype]


def _decode_elements(raw: memoryview, dtype: np.dtype, big_endian: bool) -> np.ndarray:
    """Interpret ``raw`` as elements of ``dtype`` (trailing partial element ignored)."""
    count = len(raw) // dtype.itemsize
    if not big_endian:
        return np.frombuffer(raw, dtype=dtype, count=count)
    # Swap the bytes of each scalar component (both halves of a complex number separately).
    unit = dtype.itemsize // 2 if dtype.kind == "c" else dtype.itemsize
    as_bytes = np.frombuffer(raw, dtype=np.uint8, count=count * dtype.itemsize)
    if unit > 1:
        as_bytes = np.ascontiguousarray(as_bytes.reshape(-1, unit)[:, ::-1]).reshape(-1)
    return as_bytes.view(dtype)


def _as_index_tuple(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise _CorruptPickle(f"tensor {what} is not a tuple of ints: {value!r}")
    return tuple(value)


def _tensor_from_storage(storage: Any, storage_offset: Any, size: Any, stride: Any,
                         dtype: np.dtype) -> np.ndarray:
    """Copy a strided view of ``storage`` into a new C-contiguous array, checking bounds."""
    if not isinstance(storage, _Storage):
        raise _CorruptPickle(f"tensor storage is not a storage: {storage!r}")
    if not isinstance(storage_offset, int) or storage_offset < 0:
        raise _CorruptPickle(f"bad storage offset {storage_offset!r}")
    shape = _as_index_tuple(size, "size")
    strides = _as_index_tuple(stride, "stride")
    if len(shape) != len(strides) or any(n < 0 for n in shape) or any(s < 0 for s in strides):
        raise _CorruptPickle(f"bad tensor geometry size={shape} stride={strides}")
    if 0 in shape:
        return np.empty(shape, dtype=dtype)
    elements = storage.elements(dtype)
    last = storage_offset + sum((n - 1) * s for n, s in zip(shape, strides))
    if last >= len(elements):
        raise _CorruptPickle(
            f"tensor of size {shape}, stride {strides}, offset {storage_offset} reaches element "
            f"{last} of storage {storage.key!r} holding {len(elements)}")
    view = np.lib.stride_tricks.as_strided(
        elements[storage_offset:], shape=shape,
        strides=tuple(s * dtype.itemsize for s in strides), writeable=False)
    return np.array(view, dtype=dtype, order="C", copy=True)


def _storage_dtype(storage: Any) -> np.dtype:
    if not isinstance(storage, _Storage) or storage.declared_dtype is None:
        raise _CorruptPickle(f"untyped storage used without a dtype: {storage!r}")
    return storage.declared_dtype


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _tensor_from_storage(storage, storage_offset, size, stride, _storage_dtype(storage))


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks,
                       metadata=None):
    return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks,
                       dtype, metadata=None):
    if not isinstance(dtype, np.dtype):
        raise _CorruptPickle(f"tensor dtype is not a dtype: {dtype!r}")
    return _tensor_from_storage(storage, storage_offset, size, stride, dtype)


def _rebuild_parameter(data, requires_grad, backward_hooks):
    return data


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    return data


def _torch_size(dims=()):
    return tuple(dims)


def _latin1_encode(text, encoding="utf-8"):
    """``_codecs.encode`` as protocol-2 pickles use it for ``bytes``: only latin-1 is allowed."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _CorruptPickle(f"_codecs.encode only decodes latin1 text, got {encoding!r}")
    return text.encode("latin-1")


def _small_bytes(*args):
    """``bytes`` as pickles call it: ``bytes()`` or ``bytes(list_of_ints)``; no size argument."""
    if not args:
        return b""
    if len(args) == 1 and isinstance(args[0], (bytes, bytearray, list, tuple)):
        return bytes(args[0])
    raise _CorruptPickle(f"unexpected bytes{args!r}")


_ALLOWED_CALLABLES: dict[tuple[str, str], Callable[..., Any]] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
    ("torch", "Size"): _torch_size,
    ("_codecs", "encode"): _latin1_encode,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
    ("builtins", "slice"): slice,
    ("builtins", "bytes"): _small_bytes,
}

_TENSOR_TYPES = {("torch", "Tensor"), ("torch.nn.parameter", "Parameter"),
                 ("torch.nn", "Parameter")}


# ----------------------------------------------------------------------------------------------
# Global resolution and calls (the only places where pickle data meets Python callables)
# ----------------------------------------------------------------------------------------------


class _Resolver:
    """Maps globals to allow-listed stand-ins and performs the calls the pickle asks for."""

    def __init__(self, warnings: list[str]):
        self.warnings = warnings

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def find_global(self, module: Any, name: Any) -> Any:
        if not isinstance(module, str) or not isinstance(name, str):
            raise _CorruptPickle(f"global name is not text: {module!r} {name!r}")
        module = _PYTHON2_MODULES.get(module, module)
        qualname = f"{module}.{name}"
        if (module, name) == ("torch._tensor", "_rebuild_from_type_v2"):
            return _SafeCallable(qualname, self._rebuild_from_type_v2)
        if (module, name) in _ALLOWED_CALLABLES:
            return _SafeCallable(qualname, _ALLOWED_CALLABLES[(module, name)])
        if module in _STORAGE_MODULES and name in _STORAGE_DTYPES:
            return _StorageType(qualname, _STORAGE_DTYPES[name])
        if module == "torch" and name in _TORCH_DTYPES:
            return _TORCH_DTYPES[name]
        if (module, name) in _TENSOR_TYPES:
            return _TensorType(qualname)
        self.warn(f"unsupported global {qualname} kept as UnsupportedObject "
                  "(never imported or called)")
        return UnsupportedObject(qualname)

    def call(self, function: Any, args: Any, kwargs: dict | None = None) -> Any:
        if not isinstance(args, tuple):
            raise _CorruptPickle(f"call arguments are not a tuple: {type(args).__name__}")
        kwargs = kwargs or {}
        if isinstance(function, UnsupportedObject):
            return function(*args, **kwargs)
        if not isinstance(function, _SafeCallable):
            raise _CorruptPickle(f"pickle calls a non-callable {function!r}")
        blocked = [a for a in (*args, *kwargs.values()) if isinstance(a, UnsupportedObject)]
        if blocked:
            self.warn(f"{function.qualname} not rebuilt: its argument {blocked[0].qualname} "
                      "is unsupported")
            return UnsupportedObject(function.qualname, call_args=args, call_kwargs=kwargs)
        try:
            return function.function(*args, **kwargs)
        except _CorruptPickle:
            raise
        except (TypeError, ValueError, OverflowError) as exc:
            raise _CorruptPickle(f"bad arguments for {function.qualname}: {exc}") from exc

    def _rebuild_from_type_v2(self, function, new_type, args, state):
        """``torch._tensor._rebuild_from_type_v2``: a tensor carrying Python attributes."""
        if not isinstance(new_type, _TensorType):
            self.warn(f"tensor subclass {getattr(new_type, 'qualname', new_type)!r} "
                      "read as its plain data")
        result = self.call(function, args if isinstance(args, tuple) else tuple(args))
        if state:
            self.warn("Python attributes of a tensor dropped: "
                      f"{sorted(map(str, state)) if isinstance(state, dict) else state!r}")
        return result

    def build(self, target: Any, state: Any) -> None:
        """Apply pickle's BUILD: recorded on stand-ins, ignored (with a note) elsewhere."""
        if isinstance(target, UnsupportedObject):
            target.state = state
            return
        if isinstance(target, collections.OrderedDict) and isinstance(state, dict) \
                and set(state) <= {"_metadata"}:
            return  # nn.Module.state_dict() version metadata; not needed.
        if state:
            self.warn(f"state of a {type(target).__name__} ignored")


# ----------------------------------------------------------------------------------------------
# The pickle stack machine
# ----------------------------------------------------------------------------------------------

_PUSH_ARGUMENT = frozenset({
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
    "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE",
    "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8",
})
_PUSH_CONSTANT = {"NONE": lambda: None, "NEWTRUE": lambda: True, "NEWFALSE": lambda: False,
                  "EMPTY_LIST": list, "EMPTY_DICT": dict, "EMPTY_TUPLE": tuple,
                  "EMPTY_SET": set}
_IGNORED = frozenset({"FRAME", "READONLY_BUFFER"})


def _unpickle(stream: Any, resolver: _Resolver, persistent_load: Callable[[Any], Any]) -> Any:
    """Evaluate one pickle from ``stream`` (bytes or a binary file) up to its STOP opcode.

    Only allow-listed stand-ins (from ``resolver``) are ever called. Raises ``_CorruptPickle`` or
    ``ValueError`` (from :func:`pickletools.genops`) on malformed or truncated input.
    """
    stack: list[Any] = []
    marks: list[list[Any]] = []
    memo: dict[int, Any] = {}

    def pop_mark() -> list[Any]:
        nonlocal stack
        if not marks:
            raise _CorruptPickle("MARK expected on the stack")
        items, stack = stack, marks.pop()
        return items

    def push(value: Any) -> None:
        # A function, so that the stack is looked up after ``value`` (which may pop a mark).
        stack.append(value)

    def pop() -> Any:
        if not stack:
            raise _CorruptPickle("stack underflow")
        return stack.pop()

    def top() -> Any:
        if not stack:
            raise _CorruptPickle("stack underflow")
        return stack[-1]

    def append_items(target: Any, items: list[Any]) -> None:
        if isinstance(target, list):
            target.extend(items)
        elif isinstance(target, UnsupportedObject):
            target.list_items.extend(items)
        else:
            raise _CorruptPickle(f"cannot append to {type(target).__name__}")

    def set_items(target: Any, flat: list[Any]) -> None:
        if len(flat) % 2:
            raise _CorruptPickle("odd number of items for SETITEMS")
        pairs = list(zip(flat[0::2], flat[1::2]))
        if isinstance(target, dict):
            for key, value in pairs:
                target[key] = value
        elif isinstance(target, UnsupportedObject):
            target.dict_items.extend(pairs)
        else:
            raise _CorruptPickle(f"cannot set items of {type(target).__name__}")

    for opcode, arg, _ in pickletools.genops(stream):
        op = opcode.name
        if op in _PUSH_ARGUMENT:
            push(arg)
        elif op in _PUSH_CONSTANT:
            push(_PUSH_CONSTANT[op]())
        elif op == "MARK":
            marks.append(stack)
            stack = []
        elif op == "STOP":
            return pop()
        elif op in ("BINPUT", "LONG_BINPUT", "PUT"):
            memo[arg] = top()
        elif op == "MEMOIZE":
            memo[len(memo)] = top()
        elif op in ("BINGET", "LONG_BINGET", "GET"):
            if arg not in memo:
                raise _CorruptPickle(f"memo key {arg} read before it was written")
            push(memo[arg])
        elif op == "GLOBAL":
            module, _, name = arg.partition(" ")
            push(resolver.find_global(module, name))
        elif op == "STACK_GLOBAL":
            name = pop()
            push(resolver.find_global(pop(), name))
        elif op == "REDUCE":
            args = pop()
            push(resolver.call(pop(), args))
        elif op == "NEWOBJ":
            args = pop()
            push(resolver.call(pop(), args))
        elif op == "NEWOBJ_EX":
            kwargs, args = pop(), pop()
            if not isinstance(kwargs, dict):
                raise _CorruptPickle("NEWOBJ_EX keyword arguments are not a dict")
            push(resolver.call(pop(), args, kwargs))
        elif op == "INST":
            module, _, name = arg.partition(" ")
            args = tuple(pop_mark())
            push(resolver.call(resolver.find_global(module, name), args))
        elif op == "OBJ":
            items = pop_mark()
            if not items:
                raise _CorruptPickle("OBJ without a class")
            push(resolver.call(items[0], tuple(items[1:])))
        elif op == "BUILD":
            state = pop()
            resolver.build(top(), state)
        elif op == "BINPERSID":
            push(persistent_load(pop()))
        elif op == "PERSID":
            push(persistent_load(arg))
        elif op == "TUPLE":
            push(tuple(pop_mark()))
        elif op in ("TUPLE1", "TUPLE2", "TUPLE3"):
            count = int(op[-1])
            if len(stack) < count:
                raise _CorruptPickle("stack underflow")
            items = tuple(stack[-count:])
            del stack[-count:]
            push(items)
        elif op == "LIST":
            push(pop_mark())
        elif op == "DICT":
            mapping: dict[Any, Any] = {}
            set_items(mapping, pop_mark())
            push(mapping)
        elif op == "FROZENSET":
            push(frozenset(pop_mark()))
        elif op == "APPEND":
            value = pop()
            append_items(top(), [value])
        elif op == "APPENDS":
            items = pop_mark()
            append_items(top(), items)
        elif op == "SETITEM":
            value, key = pop(), pop()
            set_items(top(), [key, value])
        elif op == "SETITEMS":
            items = pop_mark()
            set_items(top(), items)
        elif op == "ADDITEMS":
            items = pop_mark()
            target = top()
            if isinstance(target, set):
                target.update(items)
            elif isinstance(target, UnsupportedObject):
                target.list_items.extend(items)
            else:
                raise _CorruptPickle(f"cannot add items to {type(target).__name__}")
        elif op == "BYTEARRAY8":
            push(bytearray(arg))
        elif op == "POP":
            if stack:
                stack.pop()
            else:
                pop_mark()
        elif op == "POP_MARK":
            pop_mark()
        elif op == "DUP":
            push(top())
        elif op == "PROTO":
            if arg > 5:
                raise _CorruptPickle(f"unsupported pickle protocol {arg}")
        elif op in ("EXT1", "EXT2", "EXT4"):
            resolver.warn(f"unsupported pickle extension code {arg} kept as UnsupportedObject")
            push(UnsupportedObject(f"<extension code {arg}>"))
        elif op in _IGNORED:
            pass
        else:  # NEXT_BUFFER and anything newer
            raise _CorruptPickle(f"unsupported pickle opcode {op}")
    raise _CorruptPickle("pickle ended without STOP")


# ----------------------------------------------------------------------------------------------
# Persistent ids (storages)
# ----------------------------------------------------------------------------------------------


def _parse_storage_pid(pid: Any) -> tuple[Any, str, int, Any]:
    """Split ``('storage', type, key, location, numel[, view])`` into (type, key, numel, view)."""
    if not isinstance(pid, tuple) or len(pid) not in (5, 6) or pid[0] != "storage":
        raise _CorruptPickle(f"unexpected persistent id {pid!r}")
    storage_type, key, numel = pid[1], pid[2], pid[4]
    if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
        raise _CorruptPickle(f"bad storage record {pid!r}")
    return storage_type, key, numel, pid[5] if len(pid) == 6 else None


def _element_size(storage_type: _StorageType) -> int:
    return 1 if storage_type.dtype is None else storage_type.dtype.itemsize


class _ZipStorages:
    """Persistent-id loader for the zip format: reads ``<prefix>data/<key>`` on first use."""

    def __init__(self, archive: zipfile.ZipFile, prefix: str, big_endian: bool):
        self.archive = archive
        self.prefix = prefix
        self.big_endian = big_endian
        self.loaded: dict[str, _Storage] = {}

    def __call__(self, pid: Any) -> Any:
        storage_type, key, numel, _ = _parse_storage_pid(pid)
        if not isinstance(storage_type, _StorageType):
            return UnsupportedObject(getattr(storage_type, "qualname", repr(storage_type)))
        if key not in self.loaded:
            member = f"{self.prefix}data/{key}"
            expected = numel * _element_size(storage_type)
            self.loaded[key] = _Storage(key, self._read_member(member, expected),
                                        self.big_endian)
        return self.loaded[key].typed(storage_type)

    def _read_member(self, member: str, expected: int) -> bytes:
        """The ``expected`` bytes of a storage member. A member declaring more is refused
        before anything is decompressed (a zip bomb would otherwise inflate into memory), and
        at most ``expected`` + 1 bytes are ever read whatever the header says."""
        try:
            info = self.archive.getinfo(member)
        except KeyError as exc:
            raise _CorruptPickle(f"archive lacks storage member {member}") from exc
        if info.file_size > expected:
            raise _CorruptPickle(f"storage {member} holds {info.file_size} bytes, more than the "
                                 f"{expected} its tensors declare")
        with self.archive.open(info) as handle:
            raw = handle.read(expected + 1)
        if len(raw) != expected:
            raise _CorruptPickle(f"storage {member} has {len(raw)} bytes, expected {expected}")
        return raw


# ----------------------------------------------------------------------------------------------
# Formats
# ----------------------------------------------------------------------------------------------


def _load_zip(stream: Any, resolver: _Resolver) -> Any:
    with zipfile.ZipFile(stream) as archive:
        names = archive.namelist()
        pickles = [n for n in names
                   if n == "data.pkl" or (n.endswith("/data.pkl") and n.count("/") == 1)]
        if not pickles:
            if any(n.endswith("constants.pkl") for n in names):
                raise _CorruptPickle("a TorchScript archive, not a torch.save file")
            raise _CorruptPickle("zip archive without data.pkl")
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = b"little"
        if f"{prefix}byteorder" in names:
            byteorder = archive.read(f"{prefix}byteorder").strip()
        if byteorder not in (b"little", b"big"):
            raise _CorruptPickle(f"unknown byteorder record {byteorder!r}")
        storages = _ZipStorages(archive, prefix, big_endian=byteorder == b"big")
        return _unpickle(archive.read(pickles[0]), resolver, storages)


def _read_exact(stream: Any, count: int, what: str) -> bytes:
    data = stream.read(count)
    if len(data) != count:
        raise _CorruptPickle(f"file ends inside {what} ({len(data)} of {count} bytes)")
    return data


def _load_legacy(stream: Any, resolver: _Resolver) -> Any:
    """The pre-1.6 stream format; ``stream`` must be seekable (the object pickle is read twice).

    Storage data follows the object pickle and its element counts need each storage's element
    size, which only the object pickle's persistent ids tell: a first pass collects them, the
    storages are read, then the object pickle is evaluated again with real storages.
    """
    scratch = _Resolver([])
    no_storages = lambda pid: UnsupportedObject("<storage>")  # noqa: E731
    if _unpickle(stream, scratch, no_storages) != LEGACY_MAGIC_NUMBER:
        raise _CorruptPickle("neither a zip archive nor a legacy torch file (bad magic number)")
    protocol = _unpickle(stream, scratch, no_storages)
    if protocol != LEGACY_PROTOCOL_VERSION:
        raise _CorruptPickle(f"unsupported legacy protocol version {protocol!r}")
    sys_info = _unpickle(stream, scratch, no_storages)
    if not isinstance(sys_info, dict):
        raise _CorruptPickle("legacy system-info record is not a dict")
    big_endian = not sys_info.get("little_endian", True)

    object_start = stream.tell()
    storage_types: dict[str, _StorageType] = {}

    def record_storage(pid: Any) -> Any:
        storage_type, key, _, _ = _parse_storage_pid(pid)
        if isinstance(storage_type, _StorageType):
            storage_types.setdefault(key, storage_type)
        return UnsupportedObject("<storage>")

    _unpickle(stream, _Resolver([]), record_storage)
    keys = _unpickle(stream, scratch, no_storages)
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise _CorruptPickle("legacy storage key list is not a list of strings")

    data_start = stream.tell()
    data_end = stream.seek(0, io.SEEK_END)
    stream.seek(data_start)
    roots: dict[str, _Storage] = {}
    count_format = ">q" if big_endian else "<q"
    for key in keys:
        (count,) = struct.unpack(count_format, _read_exact(stream, 8, f"size of storage {key}"))
        if key not in storage_types:
            raise _CorruptPickle(f"storage {key} has no known type, so its size is unknown")
        nbytes = count * _element_size(storage_types[key])
        if not 0 <= nbytes <= data_end - stream.tell():
            raise _CorruptPickle(f"storage {key} claims {count} elements; the file ends sooner")
        roots[key] = _Storage(key, _read_exact(stream, nbytes, f"storage {key}"), big_endian)

    def load_storage(pid: Any) -> Any:
        storage_type, key, _, view = _parse_storage_pid(pid)
        if not isinstance(storage_type, _StorageType):
            return UnsupportedObject(getattr(storage_type, "qualname", repr(storage_type)))
        if key not in roots:
            raise _CorruptPickle(f"storage {key} has no data")
        storage = roots[key]
        if view is not None:
            storage = _legacy_view(storage, view, _element_size(storage_type))
        return storage.typed(storage_type)

    stream.seek(object_start)
    return _unpickle(stream, resolver, load_storage)


def _legacy_view(root: _Storage, view: Any, element_size: int) -> _Storage:
    """A pre-1.0 storage view ``(view_key, offset, size)`` in elements of the root storage."""
    if not (isinstance(view, tuple) and len(view) == 3 and isinstance(view[0], str)
            and all(isinstance(v, int) and v >= 0 for v in view[1:])):
        raise _CorruptPickle(f"bad storage view record {view!r}")
    view_key, offset, size = view
    start, stop = offset * element_size, (offset + size) * element_size
    if stop > len(root.raw):
        raise _CorruptPickle(f"storage view {view_key} exceeds storage {root.key}")
    return _Storage(view_key, root.raw[start:stop], root.big_endian)


# ----------------------------------------------------------------------------------------------
# Public entry points
# ----------------------------------------------------------------------------------------------


def _source_name(source: Any, name: str | None) -> str:
    if name is not None:
        return name
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return str(getattr(source, "name", "<binary stream>"))


def _backed_by_os_file(stream: Any) -> bool:
    try:
        stream.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return False
    return stream.seekable()


@contextlib.contextmanager
def _random_access(source: Any):
    """Yield a seekable binary stream: the opened path, the caller's OS file or an in-memory copy.

    File objects not backed by an OS file (e.g. a member opened inside a zip archive, where
    seeking backwards means decompressing again) are read into memory once.
    """
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as stream:
            yield stream
    elif isinstance(source, io.BytesIO) or _backed_by_os_file(source):
        yield source
    else:
        yield io.BytesIO(source.read())


def load_torch_file(source: Any, *, name: str | None = None) -> tuple[object, list[str]]:
    """Unpickle a ``torch.save`` file (zip or legacy format) without PyTorch.

    Tensors and parameters become C-contiguous numpy arrays that own their memory (dtype, shape,
    strides, storage offsets, shared storages and the archive's byte order are honoured;
    bfloat16/float8 use ``ml_dtypes``). Any global outside the allow-list becomes an
    :class:`UnsupportedObject` and is reported in the returned warnings by qualname; nothing
    outside the allow-list is imported or called.

    Args:
      source: a path, or a binary file object (read from its current position for a legacy
        stream; a zip archive is located by its central directory).
      name: how messages call the file; defaults to the path or the file object's ``name``.

    Returns:
      ``(obj, warnings)``: the unpickled object and human-readable notes on what was not rebuilt.

    Raises:
      TorchFileError: unreadable, empty, truncated, corrupt or unsupported file (names the file).
    """
    label = _source_name(source, name)
    warnings: list[str] = []
    try:
        with _random_access(source) as stream:
            start = stream.tell()
            head = stream.read(len(_ZIP_SIGNATURE))
            stream.seek(start)
            if not head:
                raise TorchFileError(label, "empty file")
            resolver = _Resolver(warnings)
            if head == _ZIP_SIGNATURE:
                obj = _load_zip(stream, resolver)
            else:
                obj = _load_legacy(stream, resolver)
    except TorchFileError:
        raise
    except OSError as exc:
        raise TorchFileError(label, f"cannot read: {exc}") from exc
    except MemoryError as exc:
        raise TorchFileError(label, "corrupt file: it asks for more memory than available") \
            from exc
    except Exception as exc:  # malformed data surfaces as many exception types; all mean corrupt.
        raise TorchFileError(label, f"corrupt, truncated or unsupported torch file "
                                    f"({type(exc).__name__}: {exc})") from exc
    return obj, warnings


def read_state_dict(source: Any, *, entry: str | None = None, name: str | None = None
                    ) -> tuple[dict[str, np.ndarray], list[str]]:
    """Load a flat ``{key: array}`` state dict: the file's top-level mapping, or ``obj[entry]``.

    Non-array values (and non-text keys) inside the state dict are skipped with a warning naming
    the key. Warnings of :func:`load_torch_file` are included.

    Raises:
      TorchFileError: missing ``entry``, not a mapping, or a file ``load_torch_file`` rejects.
    """
    label = _source_name(source, name)
    obj, warnings = load_torch_file(source, name=label)
    if entry is not None:
        if not isinstance(obj, dict):
            raise TorchFileError(label, f"cannot take entry {entry!r}: the file holds a "
                                        f"{type(obj).__name__}, not a mapping")
        if entry not in obj:
            raise TorchFileError(label, f"no entry {entry!r}; top-level keys: "
                                        f"{_describe_keys(obj)}")
        obj = obj[entry]
    where = f"entry {entry!r}" if entry is not None else "the file"
    if not isinstance(obj, dict):
        raise TorchFileError(label, f"{where} holds a {type(obj).__name__}, not a mapping")
    arrays: dict[str, np.ndarray] = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            warnings.append(f"skipped state-dict key {key!r}: not a string")
        elif not isinstance(value, np.ndarray):
            warnings.append(f"skipped state-dict entry {key!r}: {type(value).__name__} "
                            "is not a tensor")
        else:
            arrays[key] = value
    return arrays, warnings


def _describe_keys(mapping: dict, limit: int = 20) -> str:
    shown = ", ".join(repr(k) for k in list(mapping)[:limit])
    return f"[{shown}{', ...' if len(mapping) > limit else ''}]"
