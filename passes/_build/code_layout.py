"""Where a row's codes sit in its storage, in the chunks the host's integer matrix-vector kernels read.

`find_layout` describes an unpacking generic's codes (`bit_fields.probe_fields`: each a bit field of the row's
storage stream, found by running the unpacking body) as chunks of L codes repeating every S bits, S a whole
number of storage elements: code k + c L is code k's field moved by c S bits (checked, `check_periodic`).
`Layout` then plans the kernel's reads: per part of 32 codes (one 512-bit register of i16 lanes), one read of a
power of two of storage elements, a byte permutation (`Part.mask`) putting each field in a 16-bit lane at bit
offset s (`Layout.placements`), and the masks leaving (e / 2^step + 2^(width-1)) * 2^s in the lane
(`Layout.masks`: non-negative, `(lane & M) ^ H`); the activations are scaled per lane (`multipliers`) so that
every product carries one factor 2^P (`top`), and quantized to `levels` so that no i32 sum overflows.

q3p5 dense (7-bit pairs, a 4-bit and a 3-bit code, the latter with step 2): L = 64 codes = 32 pairs = 7 words;
int4: L = 32 codes = 4 words; q3p5 byte: L = 32 codes = 16 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from q35c.passes._build.bit_fields import Field, Unpacking, check_periodic, probe_field, probe_fields

LANE_CHOICES = (32, 64, 128)  # codes per chunk (multiples of a part)
PART_CODES = 32  # codes per part of a chunk: one 512-bit register of i16
MIN_LEVELS = 127  # activation levels per sign and group at least (7 bits and a sign: int8's)
MAX_CHUNK_BYTES = 64


def _signed16(value: int) -> int:
    """A 16-bit pattern as the signed value of its i16 constant."""
    return value - (1 << 16) if value >> 15 else value


@dataclass(frozen=True)
class Part:
    """PART_CODES codes of a chunk from one read of `count` storage elements at `start` (from the chunk's first)."""

    first: int
    start: int
    count: int
    mask: tuple[int, ...]  # per code, the bytes (low, high) of the read holding its field


@dataclass(frozen=True)
class Layout:
    """How a row's codes are read: chunks of `lanes` codes every `stride_bits` bits of storage."""

    fields: tuple[Field, ...]
    stride_bits: int
    read_elements: int  # storage elements read per chunk
    element_bits: int

    @property
    def lanes(self) -> int:
        return len(self.fields)

    def placements(self) -> list[tuple[int, int]]:
        """Per code: the chunk byte holding its field's first bit, and the field's bit offset s in the code's
        16-bit lane. That byte is the lane's high half (s = start mod 8 + 8) when the field fits below bit 15
        there, else its low half (s = start mod 8): s ranges over fewer values, the activations' multipliers
        (`multipliers`) over fewer powers of two."""
        out: list[tuple[int, int]] = []
        for f in self.fields:
            byte, bit = divmod(f.start, 8)
            out.append((byte, bit + 8) if bit + 8 + f.width <= 15 else (byte, bit))
        return out

    def parts(self) -> list[Part]:
        """The chunk's codes in parts of PART_CODES (one 512-bit register of i16), each from one read: the
        fewest storage elements (a power of two, at least 16 bytes) that end where its last code's field ends."""
        element_bytes = self.element_bits // 8
        placements = self.placements()
        out: list[Part] = []
        for first in range(0, self.lanes, PART_CODES):
            fields = self.fields[first : first + PART_CODES]
            low = min(f.start // 8 for f in fields)
            end = -(-(max((f.start + f.width - 1) // 8 for f in fields) + 1) // element_bytes)
            count = max(1, -(-16 // element_bytes))
            while count < end - low // element_bytes:
                count *= 2
            start = max(0, end - count)
            base, limit = start * element_bytes, count * element_bytes - 1
            mask: list[int] = []
            for byte, bit in placements[first : first + PART_CODES]:
                at = byte - base
                if bit >= 8:  # the field's byte is the high half; the low half's bits are masked off
                    mask += [max(at - 1, 0), at]
                else:
                    mask += [at, min(at + 1, limit)]
            out.append(Part(first, start, count, tuple(mask)))
        return out

    def masks(self) -> tuple[list[int], list[int], list[int]]:
        """Per code, as signed i16: the lane bits of its field (M), what to xor them with (X: the field's sign
        bit and its stored inversions), and the sign bit's weight alone (H = 2^(width-1) * 2^s). The kernel's code
        (lane & M) ^ X is (e / 2^step + 2^(width-1)) * 2^s, a non-negative i16 (s + width <= 15), H its bias. An
        unsigned field's code is non-negative already: X its stored inversions alone, H = 0."""
        placed = list(zip(self.fields, self.placements(), strict=True))
        keep = [_signed16(((1 << f.width) - 1) << s) for f, (_, s) in placed]
        top = [0 if f.unsigned else 1 << (f.width - 1) for f in self.fields]
        flip = [_signed16((f.flip ^ h) << s) for (f, (_, s)), h in zip(placed, top, strict=True)]
        sign = [_signed16(h << s) for (_, (_, s)), h in zip(placed, top, strict=True)]
        return keep, flip, sign

    def multipliers(self) -> list[int]:
        """Per code, the power of two its activation is scaled by, so that every code's products carry the same
        factor 2^P (`top`): P - (s - step)."""
        exponents = [s - f.shift for f, (_, s) in zip(self.fields, self.placements(), strict=True)]
        return [max(exponents) - t for t in exponents]

    def top(self) -> int:
        return max(s - f.shift for f, (_, s) in zip(self.fields, self.placements(), strict=True))

    def levels(self, group: int) -> int:
        """The largest |activation| level Q such that Q * 2^multiplier fits i16 and a lane's share of a group's
        products ((2^width - 1) Q 2^(P + step) each) fits i32."""
        per_lane = group // (PART_CODES // 2)
        product = max(((1 << f.width) - 1) << (self.top() + f.shift) for f in self.fields)
        return min(((1 << 15) - 1) >> max(self.multipliers()), ((1 << 31) - 1) // (per_lane * product))


def find_layout(unpacking: Unpacking, group: int) -> Layout | None:
    """The layout of the unpacking's codes in chunks of the fewest codes (LANE_CHOICES) dividing the group,
    or None when the codes are no bit fields or fit no layout (`Layout.levels` below MIN_LEVELS among them)."""
    codes = 1
    for extent in unpacking.grid:
        codes *= extent
    for lanes in LANE_CHOICES:
        if group % lanes or codes % lanes:
            continue
        bits = unpacking.bits
        first = probe_field(unpacking, 0)
        if first is None:
            return None
        if codes == lanes:  # a tile of one chunk (a K tile of one block): the next chunk's place from the map
            stride = (unpacking.read(lanes, beyond=True)[0] - unpacking.read(0)[0]) * bits
        else:
            next_chunk = probe_field(unpacking, lanes)
            if next_chunk is None:
                return None
            stride = next_chunk.start - first.start
        if stride <= 0 or stride % bits or stride % 8:
            continue
        probed = probe_fields(unpacking, lanes)
        if probed is None:
            return None
        fields = probed
        last_byte = max((f.start + f.width - 1) // 8 for f in fields)
        read = -(-(last_byte + 1) * 8 // bits)
        if read * bits // 8 > MAX_CHUNK_BYTES or min(f.start for f in fields) < 0:
            continue
        if (codes // lanes - 1) * (stride // bits) + read > unpacking.elements:
            continue
        if any(f.width > 8 for f in fields):
            continue
        layout = Layout(tuple(fields), stride, read, bits)
        last_chunk = (codes // lanes - 1) * (stride // bits)
        if any(last_chunk + p.start + p.count > unpacking.elements for p in layout.parts()):
            continue  # a part's read would run past the row
        if layout.levels(group) < MIN_LEVELS:
            continue
        if not check_periodic(unpacking, fields, stride):
            return None
        return layout
    return None
