"""SoundFont (SF2/SF3) preset headers, read straight from the RIFF ``pdta/phdr`` chunk (no sample data is loaded)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError

DRUM_BANK = 128  # GM soundfonts keep their drum kits in bank 128
_PHDR_RECORD = struct.Struct("<20sHHHIII")  # name, preset, bank, bag index, library, genre, morphology (38 bytes)


@dataclass(frozen=True)
class Preset:
    """One soundfont preset: ``bank`` 128 holds drum kits, bank 0 the GM melodic programs."""

    name: str
    program: int
    bank: int


def _riff_chunks(f, end: int):
    """Yield (id, size, data offset) of the chunks between the current position and ``end``."""
    while f.tell() + 8 <= end:
        cid, size = struct.unpack("<4sI", f.read(8))
        start = f.tell()
        yield cid, size, start
        f.seek(start + size + (size & 1))


def read_presets(path: str | Path) -> list[Preset]:
    """Presets of an SF2/SF3 file, sorted by (bank, program), read from the ``pdta/phdr`` chunk.

    Only the headers are read (the sample data is skipped), so this is fast for large soundfonts.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"soundfont {p} does not exist.")
    with open(p, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"sfbk":
            raise DataError(f"{p} is not a SoundFont (SF2/SF3) file.")
        end = min(8 + struct.unpack("<I", head[4:8])[0], p.stat().st_size)
        for cid, size, start in _riff_chunks(f, end):
            if cid != b"LIST" or f.read(4) != b"pdta":
                continue
            for sub, sub_size, _ in _riff_chunks(f, start + size):
                if sub != b"phdr":
                    continue
                data = f.read(sub_size)
                records = [_PHDR_RECORD.unpack_from(data, o) for o in range(0, len(data) - 37, 38)]
                presets = {
                    (bank, prog): Preset(name.split(b"\0", 1)[0].decode("latin-1").strip(), prog, bank)
                    for name, prog, bank, *_ in records[:-1]  # the last record is the terminal 'EOP'
                }
                return sorted(presets.values(), key=lambda q: (q.bank, q.program))
    raise DataError(f"{p} holds no preset headers (no pdta/phdr chunk); is it a complete SoundFont?")


def drum_kits(path: str | Path) -> list[Preset]:
    """The drum kits (bank 128 presets) of a soundfont."""
    return [q for q in read_presets(path) if q.bank == DRUM_BANK]
