"""A fast reader of WFDB/MIT annotation files (``.atr``, LUDB ``.i`` ... ``.v6``) with numpy.

Format (WFDB library, ``annot(5)``): a stream of little-endian 16-bit words; the high 6 bits are the
annotation type A, the low 10 bits an interval I. A = 1..49 is an annotation whose time is the
previous time + I. Special types modify the annotation just written or the clock:
``SKIP`` (59): the next 4 bytes hold a signed 32-bit interval (PDP-11 order: high 16-bit word first)
added to the time; ``NUM`` (60), ``SUB`` (61), ``CHN`` (62): I is the num / subtype / chan field of
the current annotation (num and chan carry over to later annotations); ``AUX`` (63): I bytes of
auxiliary text follow (padded to an even count). A word of 0 ends the file.

``wfdb.rdann`` costs about 2.5 ms per file; this reader about 30 us for a LUDB lead file, so one
LUDB record with its 12 annotation files reads in a few ms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ecgssl.errors import ECGDataError

SKIP, NUM, SUB, CHN, AUX = 59, 60, 61, 62, 63
NOTE = 22

# Standard annotation codes -> mnemonic symbols (WFDB ecgcodes.h).
CODE_TO_SYMBOL = {
    0: " ", 1: "N", 2: "L", 3: "R", 4: "a", 5: "V", 6: "F", 7: "J", 8: "A", 9: "S", 10: "E",
    11: "j", 12: "/", 13: "Q", 14: "~", 16: "|", 18: "s", 19: "T", 20: "*", 21: "D", 22: '"',
    23: "=", 24: "p", 25: "B", 26: "^", 27: "t", 28: "+", 29: "u", 30: "?", 31: "!", 32: "[",
    33: "]", 34: "e", 35: "n", 36: "@", 37: "x", 38: "f", 39: "(", 40: ")", 41: "r",
}
SYMBOL_TO_CODE = {s: c for c, s in CODE_TO_SYMBOL.items()}
_SYMBOL_LUT = np.array([CODE_TO_SYMBOL.get(c, f"[{c}]") for c in range(64)], dtype=object)


@dataclass
class Annotations:
    """Annotations of one file, in file order.

    Attributes:
        sample: int64 (n,) sample indices.
        code: int16 (n,) annotation type codes (``CODE_TO_SYMBOL``).
        subtype, chan, num: int16 (n,) fields.
        aux: list of n str (empty when absent; trailing NULs stripped).
        fs: time resolution from a ``## time resolution`` definition note, else None.
    """

    sample: np.ndarray
    code: np.ndarray
    subtype: np.ndarray
    chan: np.ndarray
    num: np.ndarray
    aux: list[str]
    fs: float | None = None
    custom_symbols: dict[int, str] = field(default_factory=dict)

    @property
    def symbol(self) -> list[str]:
        """Mnemonic symbols, one per annotation."""
        out = _SYMBOL_LUT[self.code].tolist() if len(self.code) else []
        for i, c in enumerate(self.code.tolist()):
            if c in self.custom_symbols:
                out[i] = self.custom_symbols[c]
        return out

    def __len__(self) -> int:
        return int(self.sample.shape[0])


def read_annotations(path: str | Path, record_id: str | None = None) -> Annotations:
    """Read one annotation file. Raises ``ECGDataError`` for a missing or malformed file."""
    path = Path(path)
    rid = record_id or path.stem
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise ECGDataError(rid, f"annotation file {path} is missing") from None
    return parse_annotation_bytes(raw, rid, str(path))


def parse_annotation_bytes(raw: np.ndarray, record_id: str = "?",
                           what: str = "annotation file") -> Annotations:
    """Decode the bytes (uint8 array) of an annotation file; see the module docstring."""
    if raw.size % 2:
        raw = raw[:-1]  # a stray trailing byte cannot hold a word
    words = raw.view("<u2").astype(np.int64)
    types, intervals = words >> 10, words & 0x3FF
    # Fast path: if, in word alignment, nothing before the first zero word is a special type,
    # then no AUX payload exists and every word is a plain annotation (the first real special
    # word would be met, correctly aligned, before any payload could misalign the stream).
    special = (types >= SKIP) | (words == 0)
    stop = int(np.argmax(special)) if special.any() else words.size
    if stop == words.size or words[stop] == 0:
        codes = types[:stop]
        samples = np.cumsum(intervals[:stop])
        zeros = np.zeros(stop, dtype=np.int16)
        ann = Annotations(samples.astype(np.int64), codes.astype(np.int16), zeros, zeros.copy(),
                          zeros.copy(), [""] * stop)
    else:
        ann = _parse_sequential(raw, words, record_id, what)
    return _strip_definitions(ann)


def _parse_sequential(raw, words, record_id, what) -> Annotations:
    """General decoder for files with SKIP/NUM/SUB/CHN/AUX words."""
    samples, codes, subs, chans, nums, auxs = [], [], [], [], [], []
    t, chan, num = 0, 0, 0
    i, n = 0, words.size
    wl = words.tolist()
    while i < n:
        w = wl[i]
        a, interval = w >> 10, w & 0x3FF
        i += 1
        if w == 0:
            break
        if a == SKIP:
            if i + 2 > n:
                raise ECGDataError(record_id, f"{what}: truncated SKIP word")
            hi, lo = wl[i], wl[i + 1]
            skip = (hi << 16) | lo
            if skip >= 1 << 31:
                skip -= 1 << 32  # the interval is a signed 32-bit integer
            t += skip
            i += 2
        elif a == NUM:
            if codes:
                num = interval - 1024 if interval >= 512 else interval  # signed 10-bit field
                nums[-1] = num
        elif a == SUB:
            if codes:
                subs[-1] = interval - 1024 if interval >= 512 else interval
        elif a == CHN:
            if codes:
                chan = interval
                chans[-1] = chan
        elif a == AUX:
            nbytes = interval
            start = 2 * i
            if start + nbytes > raw.size:
                raise ECGDataError(record_id, f"{what}: AUX text runs past the end of the file")
            if codes:
                auxs[-1] = bytes(raw[start:start + nbytes]).decode("latin-1").rstrip("\x00")
            i += (nbytes + 1) // 2
        else:
            t += interval
            samples.append(t)
            codes.append(a)
            subs.append(0)
            chans.append(chan)  # chan and num carry over from the previous annotation
            nums.append(num)
            auxs.append("")
    return Annotations(np.asarray(samples, dtype=np.int64), np.asarray(codes, dtype=np.int16),
                       np.asarray(subs, dtype=np.int16), np.asarray(chans, dtype=np.int16),
                       np.asarray(nums, dtype=np.int16), auxs)


def _strip_definitions(ann: Annotations) -> Annotations:
    """Drop code-0 entries and the ``## ...`` definition notes some writers put at sample 0."""
    if not len(ann):
        return ann
    keep = ann.code != 0
    for i in np.flatnonzero((ann.code == NOTE) & (ann.sample == 0)).tolist():
        text = ann.aux[i]
        if not text.startswith("## "):
            continue
        keep[i] = False
        body = text[3:].strip()
        if body.startswith("time resolution:"):
            try:
                ann.fs = float(body.split(":", 1)[1])
            except ValueError:
                pass
    # Custom label definitions are "code symbol description" notes between the two markers.
    in_defs = False
    for i in np.flatnonzero((ann.code == NOTE) & (ann.sample == 0)).tolist():
        text = ann.aux[i]
        if text.startswith("## "):
            in_defs = text[3:].strip() == "annotation type definitions"
            continue
        if in_defs:
            parts = text.split(" ", 2)
            if len(parts) >= 2 and parts[0].isdigit():
                ann.custom_symbols[int(parts[0])] = parts[1]
                keep[i] = False
    if keep.all():
        return ann
    idx = np.flatnonzero(keep)
    return Annotations(ann.sample[idx], ann.code[idx], ann.subtype[idx], ann.chan[idx],
                       ann.num[idx], [ann.aux[i] for i in idx.tolist()], ann.fs,
                       ann.custom_symbols)
