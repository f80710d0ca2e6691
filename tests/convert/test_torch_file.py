"""Tests for the PyTorch-free checkpoint reader, against files written by ``torch.save``."""
from __future__ import annotations

import argparse
import io
import os
import pickle
import sys
import zipfile

import ml_dtypes
import numpy as np
import pytest

from oldphoto_jax.convert.torch_file import (
    TorchFileError,
    UnsupportedObject,
    load_torch_file,
    read_state_dict,
)

torch = pytest.importorskip("torch")

FORMATS = ("zip", "legacy")

NUMPY_DTYPES = {
    torch.float32: np.dtype(np.float32),
    torch.float16: np.dtype(np.float16),
    torch.float64: np.dtype(np.float64),
    torch.int64: np.dtype(np.int64),
    torch.int32: np.dtype(np.int32),
    torch.uint8: np.dtype(np.uint8),
    torch.bool: np.dtype(np.bool_),
    torch.bfloat16: np.dtype(ml_dtypes.bfloat16),
    torch.complex64: np.dtype(np.complex64),
    torch.uint16: np.dtype(np.uint16),
    torch.float8_e4m3fn: np.dtype(ml_dtypes.float8_e4m3fn),
}


def save(obj, path, fmt: str):
    torch.save(obj, path, _use_new_zipfile_serialization=(fmt == "zip"))
    return path


def tensor_bytes(tensor) -> bytes:
    """The tensor's elements in C order as raw bytes (numpy cannot take bfloat16/float8)."""
    tensor = tensor.detach().contiguous()
    if tensor.dtype in (torch.bfloat16, torch.float8_e4m3fn, torch.uint16):
        tensor = tensor.view(torch.int16 if tensor.element_size() == 2 else torch.int8)
    return tensor.numpy().tobytes()


def assert_same(array, tensor):
    """``array`` equals ``tensor`` bit for bit, is C-contiguous and owns its memory."""
    assert isinstance(array, np.ndarray), type(array)
    assert array.dtype == NUMPY_DTYPES[tensor.dtype]
    assert array.shape == tuple(tensor.shape)
    assert array.flags.c_contiguous and array.flags.owndata and array.flags.writeable
    assert array.tobytes() == tensor_bytes(tensor)


def sample_tensors():
    gen = torch.Generator().manual_seed(0)
    floats = torch.randn(3, 4, generator=gen)
    floats[0, 0] = float("nan")
    floats[0, 1] = float("-inf")
    return {
        "f32": floats,
        "f16": torch.randn(5, generator=gen).half(),
        "f64": torch.randn(2, 3, generator=gen).double(),
        "i64": torch.tensor([-(2**62), -1, 0, 7, 2**62]),
        "u8": torch.tensor([[0, 1], [254, 255]], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "bf16": torch.randn(2, 2, generator=gen).bfloat16(),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
    }


@pytest.mark.parametrize("fmt", FORMATS)
def test_dtypes_round_trip_bitwise(tmp_path, fmt):
    tensors = sample_tensors()
    obj, warnings = load_torch_file(save(tensors, tmp_path / "t.pth", fmt))
    assert warnings == []
    assert list(obj) == list(tensors)
    for key, tensor in tensors.items():
        assert_same(obj[key], tensor)


@pytest.mark.parametrize("fmt", FORMATS)
def test_views_and_shared_storages(tmp_path, fmt):
    base = torch.arange(24, dtype=torch.float32)
    views = {
        "transposed": base[:12].view(3, 4).t(),
        "middle": base[2:8].view(2, 3),
        "tail": base[10:],
        "every_third": base[1::3],
        "expanded": base[5:6].expand(4),
    }
    assert not views["transposed"].is_contiguous()
    obj, _ = load_torch_file(save(views, tmp_path / "v.pth", fmt))
    for key, tensor in views.items():
        assert_same(obj[key], tensor)
    obj["middle"][0, 0] = -1.0  # arrays own their memory: the others are unaffected
    assert obj["tail"][0] == 10.0 and obj["transposed"][2, 0] == 2.0


def small_module():
    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.utils.spectral_norm(torch.nn.Conv2d(3, 4, 3)),
        torch.nn.BatchNorm2d(4),
        torch.nn.Conv2d(4, 2, 1, bias=False),
    )
    module(torch.randn(2, 3, 6, 6))  # one training step: BN stats, u vector, batch count move
    return module


@pytest.mark.parametrize("fmt", FORMATS)
def test_module_state_dict_with_batchnorm_and_spectral_norm(tmp_path, fmt):
    state = small_module().state_dict()
    arrays, warnings = read_state_dict(save(state, tmp_path / "m.pth", fmt))
    assert warnings == []
    assert list(arrays) == list(state)
    assert {"0.weight_orig", "0.weight_u", "0.weight_v", "1.num_batches_tracked"} <= set(arrays)
    for key, tensor in state.items():
        assert_same(arrays[key], tensor)
    batches = arrays["1.num_batches_tracked"]
    assert batches.dtype == np.int64 and batches.shape == () and int(batches) == 1


def detection_checkpoint():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.ones(1, 1, 4, 4)).sum().backward()
    optimizer.step()
    return {
        "epoch": 3,
        "model_state": model.state_dict(),
        "optimizer_state": optimizer.state_dict(),
        "args": argparse.Namespace(lr=1e-3, name="scratch"),
    }


@pytest.mark.parametrize("fmt", FORMATS)
def test_detection_style_checkpoint(tmp_path, fmt):
    checkpoint = detection_checkpoint()
    path = save(checkpoint, tmp_path / "FT_Epoch_latest.pt", fmt)

    arrays, warnings = read_state_dict(path, entry="model_state")
    assert list(arrays) == list(checkpoint["model_state"])
    for key, tensor in checkpoint["model_state"].items():
        assert_same(arrays[key], tensor)
    assert any("argparse.Namespace" in w for w in warnings)

    obj, _ = load_torch_file(path)
    assert obj["epoch"] == 3
    args = obj["args"]
    assert isinstance(args, UnsupportedObject) and args.qualname == "argparse.Namespace"
    assert args.state == {"lr": 1e-3, "name": "scratch"}
    saved_state = checkpoint["optimizer_state"]["state"]
    for index, slots in obj["optimizer_state"]["state"].items():
        for slot, value in slots.items():
            assert_same(value, saved_state[index][slot])
    assert obj["optimizer_state"]["param_groups"][0]["betas"] == (0.9, 0.999)


@pytest.mark.parametrize("fmt", FORMATS)
def test_reads_a_member_of_a_zip_archive(tmp_path, fmt):
    state = small_module().state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer, _use_new_zipfile_serialization=(fmt == "zip"))
    outer = tmp_path / "checkpoints.zip"
    with zipfile.ZipFile(outer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("checkpoints/restoration/VAE_A_quality/latest_net_G.pth",
                         buffer.getvalue())
    with zipfile.ZipFile(outer) as archive, \
            archive.open("checkpoints/restoration/VAE_A_quality/latest_net_G.pth") as member:
        arrays, _ = read_state_dict(member)
    for key, tensor in state.items():
        assert_same(arrays[key], tensor)


def test_accepts_an_open_os_file(tmp_path):
    state = {"w": torch.arange(4.0)}
    path = save(state, tmp_path / "w.pth", "legacy")
    with open(path, "rb") as stream:
        arrays, _ = read_state_dict(stream)
    assert_same(arrays["w"], state["w"])


def test_tensor_dtypes_written_with_untyped_storages(tmp_path):
    tensors = {"u16": torch.tensor([0, 1, 65535], dtype=torch.uint16),
               "f8": torch.tensor([0.5, -2.0, 448.0]).to(torch.float8_e4m3fn),
               "c64": torch.tensor([1 + 2j, -3j], dtype=torch.complex64)}
    obj, warnings = load_torch_file(save(tensors, tmp_path / "v3.pth", "zip"))
    assert warnings == []
    for key, tensor in tensors.items():
        assert_same(obj[key], tensor)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("protocol", [1, 4])
def test_other_pickle_protocols_and_plain_containers(tmp_path, fmt, protocol):
    checkpoint = {"w": torch.randn(2, 3).t(), "size": torch.Size([2, 3]), "dtype": torch.float16,
                  "set": {1, 2}, "frozen": frozenset({"a"}), "bytes": b"\x00\xff", "empty": b"",
                  "complex": 1 - 2j, "slice": slice(1, None, 2), "nested": [(1, 2.5), None]}
    path = tmp_path / "p.pth"
    torch.save(checkpoint, path, pickle_protocol=protocol,
               _use_new_zipfile_serialization=(fmt == "zip"))
    obj, warnings = load_torch_file(path)
    assert warnings == []
    assert_same(obj.pop("w"), checkpoint.pop("w"))
    checkpoint["size"], checkpoint["dtype"] = (2, 3), np.dtype(np.float16)
    assert obj == checkpoint


def test_tensors_with_python_attributes_are_read_as_data(tmp_path):
    plain = torch.arange(3.0)
    plain.note = "kept out"
    parameter = torch.nn.Parameter(torch.ones(2, 2))
    parameter.tag = 1
    obj, warnings = load_torch_file(save({"t": plain, "p": parameter}, tmp_path / "a.pth", "zip"))
    assert_same(obj["t"], plain)
    assert_same(obj["p"], parameter)
    assert any("note" in w for w in warnings)


def rewrite_zip_big_endian(source, target, swap_units: dict[str, int]):
    """Copy a torch zip file, declaring big-endian data and byte-swapping each storage."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            data = old.read(info)
            folder, _, leaf = info.filename.rpartition("/")
            if leaf == "byteorder":
                data = b"big"
            elif folder.endswith("/data") and leaf in swap_units:
                unit = swap_units[leaf]
                data = np.frombuffer(data, np.uint8).reshape(-1, unit)[:, ::-1].tobytes()
            new.writestr(info, data)


def test_big_endian_zip_archive(tmp_path):
    tensors = {"f32": torch.randn(3, 2), "i64": torch.tensor([1, -2, 2**40]),
               "bf16": torch.randn(4).bfloat16(), "c64": torch.tensor([1.5 - 2j]),
               "u8": torch.tensor([1, 2, 3], dtype=torch.uint8)}
    little = save(tensors, tmp_path / "little.pth", "zip")
    # Storage keys are numbered in order of first appearance: here, one per tensor.
    units = {str(i): (t.element_size() // 2 if t.is_complex() else t.element_size())
             for i, t in enumerate(tensors.values())}
    rewrite_zip_big_endian(little, tmp_path / "big.pth", units)
    obj, _ = load_torch_file(tmp_path / "big.pth")
    for key, tensor in tensors.items():
        assert_same(obj[key], tensor)


class RunsShellCommand:
    """Pickles as a call of ``os.system``: what a malicious checkpoint would contain."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class EvaluatesCode:
    def __reduce__(self):
        return eval, ("__import__('os').getpid()",)


@pytest.mark.parametrize("fmt", FORMATS)
def test_malicious_payload_is_not_executed(tmp_path, fmt):
    marker = tmp_path / "pwned"
    checkpoint = {"weight": torch.ones(2), "evil": RunsShellCommand(f"touch {marker}"),
                  "eval": EvaluatesCode()}
    path = save(checkpoint, tmp_path / "evil.pth", fmt)

    obj, warnings = load_torch_file(path)
    assert not marker.exists()
    assert any("posix.system" in w or "os.system" in w for w in warnings)
    assert any("builtins.eval" in w for w in warnings)
    evil = obj["evil"]
    assert isinstance(evil, UnsupportedObject)
    assert evil.qualname in ("posix.system", "os.system")
    assert evil.call_args == (f"touch {marker}",)
    assert_same(obj["weight"], checkpoint["weight"])

    arrays, warnings = read_state_dict(path)
    assert not marker.exists()
    assert list(arrays) == ["weight"]
    assert any("'evil'" in w for w in warnings) and any("'eval'" in w for w in warnings)


def pickle_ops(value) -> bytes:
    """Protocol-2 opcodes that push ``value`` (a pickle without PROTO and STOP)."""
    return pickle.dumps(value, protocol=2)[2:-1]


def legacy_file(object_pickle: bytes, keys=(), storage_records: bytes = b"") -> bytes:
    """A legacy-format torch file around a hand-written object pickle."""
    header = [0x1950A86A20F9469CFC6C, 1001,
              {"protocol_version": 1001, "little_endian": True,
               "type_sizes": {"short": 2, "int": 4, "long": 4}}]
    return (b"".join(pickle.dumps(v, protocol=2) for v in header) + object_pickle
            + pickle.dumps(list(keys), protocol=2) + storage_records)


def test_globals_are_never_imported(tmp_path):
    if "this" in sys.modules:
        pytest.skip("module 'this' already imported")
    crafted = b"\x80\x02cthis\ns\n" + pickle_ops((1, "x")) + b"\x81" + pickle_ops({"a": 1}) + b"b."
    path = tmp_path / "imports.pth"
    path.write_bytes(legacy_file(crafted))
    obj, warnings = load_torch_file(path)
    assert "this" not in sys.modules
    assert isinstance(obj, UnsupportedObject) and obj.qualname == "this.s"
    assert obj.call_args == (1, "x") and obj.state == {"a": 1}
    assert warnings and "this.s" in warnings[0]


def hand_written_tensor(storage_numel: int, offset: int, size: tuple, stride: tuple) -> bytes:
    """Object pickle of one float32 tensor ``_rebuild_tensor_v2`` over storage key '0'."""
    persistent_id = (b"(" + pickle_ops("storage") + b"ctorch\nFloatStorage\n" + pickle_ops("0")
                     + pickle_ops("cpu") + pickle_ops(storage_numel) + b"tQ")
    arguments = (b"(" + persistent_id + pickle_ops(offset) + pickle_ops(size)
                 + pickle_ops(stride) + pickle_ops(False)
                 + b"ccollections\nOrderedDict\n)Rt")
    return b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n" + arguments + b"R."


def storage_record(values: np.ndarray) -> bytes:
    return np.int64(values.size).tobytes() + values.astype("<f4").tobytes()


def test_hand_written_strided_tensor(tmp_path):
    values = np.arange(10, dtype=np.float32)
    path = tmp_path / "strided.pth"
    path.write_bytes(legacy_file(hand_written_tensor(10, 1, (2, 3), (1, 3)), ["0"],
                                 storage_record(values)))
    array, _ = load_torch_file(path)
    expected = np.lib.stride_tricks.as_strided(values[1:], (2, 3), (4, 12))
    np.testing.assert_array_equal(array, expected)


@pytest.mark.parametrize("geometry", [(7, (2, 2), (1, 2)), (0, (2, 3), (3, 3)),
                                      (0, (2,), (-1,))])
def test_tensor_outside_its_storage_is_rejected(tmp_path, geometry):
    offset, size, stride = geometry
    path = tmp_path / "oob.pth"
    path.write_bytes(legacy_file(hand_written_tensor(8, offset, size, stride), ["0"],
                                 storage_record(np.zeros(8, np.float32))))
    with pytest.raises(TorchFileError, match="oob.pth"):
        load_torch_file(path)


def truncated(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 7])


def random_bytes(path):
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("damage", [truncated, random_bytes, lambda path: path.write_bytes(b"")],
                         ids=["truncated", "random", "empty"])
def test_damaged_files_raise_naming_the_file(tmp_path, fmt, damage):
    path = save({"w": torch.arange(64.0)}, tmp_path / f"damaged_{fmt}.pth", fmt)
    damage(path)
    with pytest.raises(TorchFileError, match=f"damaged_{fmt}.pth"):
        read_state_dict(path)


def test_missing_file_and_custom_name(tmp_path):
    with pytest.raises(TorchFileError, match="nothing_here.pth"):
        load_torch_file(tmp_path / "nothing_here.pth")
    with pytest.raises(TorchFileError, match="^archive.zip:member: empty file"):
        load_torch_file(io.BytesIO(b""), name="archive.zip:member")


def test_missing_entry_and_non_mapping(tmp_path):
    path = save({"epoch": 1, "model_state": [torch.ones(1)]}, tmp_path / "odd.pt", "zip")
    with pytest.raises(TorchFileError, match=r"odd\.pt: no entry 'state'.*'epoch'"):
        read_state_dict(path, entry="state")
    with pytest.raises(TorchFileError, match=r"odd\.pt: entry 'model_state' holds a list"):
        read_state_dict(path, entry="model_state")
    listed = save([torch.ones(1)], tmp_path / "list.pt", "legacy")
    with pytest.raises(TorchFileError, match=r"list\.pt: cannot take entry"):
        read_state_dict(listed, entry="model_state")


def _inflate_storage(source, target, member_suffix, size):
    """Copy a torch zip file with the storage member ``member_suffix`` replaced by ``size`` zero
    bytes, deflated (a few hundred KB on disk)."""
    with zipfile.ZipFile(source) as old, \
            zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            if info.filename.endswith(member_suffix):
                with new.open(info.filename, "w", force_zip64=True) as handle:
                    block = bytes(1 << 20)
                    for _ in range(size >> 20):
                        handle.write(block)
            else:
                new.writestr(info.filename, old.read(info.filename))


def test_storage_larger_than_its_tensor_is_refused_before_reading(tmp_path):
    """A zip bomb: a storage member that inflates far beyond what its tensor declares."""
    import tracemalloc

    small = save({"w": torch.arange(16.0)}, tmp_path / "small.pth", "zip")
    _inflate_storage(small, tmp_path / "bomb.pth", "/data/0", 64 << 20)
    assert (tmp_path / "bomb.pth").stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(TorchFileError, match=r"bomb\.pth: .*data/0 holds 67108864 bytes, "
                                                 r"more than the 64 its tensors declare"):
            read_state_dict(tmp_path / "bomb.pth")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"{peak} bytes allocated: the storage was read"
