"""Regenerates the corrupt-file corpus (run once; the files are committed).

Each case is a tiny damaged image plus `<case>.expected` naming the file to open, the error kind
(voxcalc_nifti::ErrorKind) and the header field the message must name ("-" when none).
Usage (from this directory): python3 make_corpus.py
"""

import gzip
import struct
from pathlib import Path

HERE = Path(__file__).parent


def nifti1(dims=(3, 4, 5), datatype=4, bitpix=16, vox_offset=352.0, magic=b"n+1\0",
           endian="<", slope=1.0, inter=0.0, qform_code=0, sform_code=2, quatern=(0, 0, 0),
           extender=b"\0\0\0\0"):
    h = bytearray(348)
    struct.pack_into(endian + "i", h, 0, 348)
    dim = [len(dims)] + list(dims) + [1] * (7 - len(dims))
    struct.pack_into(endian + "8h", h, 40, *dim)
    struct.pack_into(endian + "hh", h, 70, datatype, bitpix)
    struct.pack_into(endian + "8f", h, 76, 1, 2, 2, 2, 1, 1, 1, 1)
    struct.pack_into(endian + "fff", h, 108, vox_offset, slope, inter)
    struct.pack_into(endian + "hh", h, 252, qform_code, sform_code)
    struct.pack_into(endian + "3f", h, 256, *quatern)
    struct.pack_into(endian + "4f", h, 280, 2, 0, 0, -10)
    struct.pack_into(endian + "4f", h, 296, 0, 2, 0, -20)
    struct.pack_into(endian + "4f", h, 312, 0, 0, 2, -30)
    h[344:348] = magic
    return bytes(h) + extender


def nifti2(dims=(3, 4, 5), datatype=4, bitpix=16, vox_offset=544, magic=b"n+2\0\r\n\x1a\n"):
    h = bytearray(540)
    struct.pack_into("<i", h, 0, 540)
    h[4:12] = magic
    struct.pack_into("<hh", h, 12, datatype, bitpix)
    dim = [len(dims)] + list(dims) + [1] * (7 - len(dims))
    struct.pack_into("<8q", h, 16, *dim)
    struct.pack_into("<8d", h, 104, 1, 2, 2, 2, 1, 1, 1, 1)
    struct.pack_into("<qdd", h, 168, vox_offset, 1.0, 0.0)
    struct.pack_into("<ii", h, 344, 0, 2)
    struct.pack_into("<4d", h, 400, 2, 0, 0, -10)
    struct.pack_into("<4d", h, 432, 0, 2, 0, -20)
    struct.pack_into("<4d", h, 464, 0, 0, 2, -30)
    return bytes(h) + b"\0\0\0\0"


DATA = bytes(range(120)) * 1  # 3*4*5 int16 = 120 bytes
GOOD = nifti1() + DATA


def gz(data):
    return gzip.compress(data, compresslevel=1, mtime=0)


CASES = []


def case(name, filename, content, kind, field="-"):
    CASES.append((name, filename, content, kind, field))


# Controls: the undamaged originals open ("Ok"), so each error comes from its damage.
case("control_valid", "control_valid.nii", GOOD, "Ok")
case("control_valid_gz", "control_valid_gz.nii.gz", gz(GOOD), "Ok")
case("control_valid_pair", "control_valid_pair.hdr", nifti1(magic=b"ni1\0", vox_offset=0.0), "Ok")
def gz_all_flags(data):
    """A gzip member using every optional header field: FEXTRA, FNAME, FCOMMENT, FHCRC."""
    import zlib
    header = b"\x1f\x8b\x08" + bytes([0x04 | 0x08 | 0x10 | 0x02]) + b"\0\0\0\0\0\xff"
    header += struct.pack("<H", 6) + b"AB\x02\0xy" + b"name.nii\0" + b"a comment\0"
    header += struct.pack("<H", zlib.crc32(header) & 0xFFFF)
    body = zlib.compressobj(1, zlib.DEFLATED, -15)
    deflated = body.compress(data) + body.flush()
    return header + deflated + struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)


case("control_gz_all_header_fields", "control_gz_all_header_fields.nii.gz", gz_all_flags(GOOD),
     "Ok")
case("control_gz_two_members", "control_gz_two_members.nii.gz", gz(GOOD[:200]) + gz(GOOD[200:]),
     "Ok")
case("empty_file", "empty_file.nii", b"", "Truncated", "sizeof_hdr")
case("short_header", "short_header.nii", GOOD[:100], "Truncated")
case("bad_sizeof_hdr", "bad_sizeof_hdr.nii", struct.pack("<i", 349) + GOOD[4:], "BadSizeofHdr",
     "sizeof_hdr")
case("bad_magic", "bad_magic.nii", nifti1(magic=b"abc\0") + DATA, "BadMagic", "magic")
case("pair_magic_in_nii", "pair_magic_in_nii.nii", nifti1(magic=b"ni1\0") + DATA, "BadMagic",
     "magic")
# dim[0] = 0 is a 0-d image (one element), as nibabel writes np.array(5.0): a control.
case("control_dim0_zero", "control_dim0_zero.nii",
     GOOD[:40] + struct.pack("<h", 0) + GOOD[42:], "Ok")
case("dim0_eight", "dim0_eight.nii",
     GOOD[:40] + struct.pack("<h", 8) + GOOD[42:], "BadField", "dim[0]")
case("dim_negative", "dim_negative.nii", nifti1(dims=(3, -4, 5)) + DATA, "BadField", "dim[2]")
case("dim_zero", "dim_zero.nii", nifti1(dims=(3, 4, 0)) + DATA, "BadField", "dim[3]")
case("be_dim_negative", "be_dim_negative.nii", nifti1(dims=(-3, 4, 5), endian=">") + DATA,
     "BadField", "dim[1]")
case("n2_dim_overflow", "n2_dim_overflow.nii",
     nifti2(dims=(1 << 40, 1 << 40, 1 << 40)) + DATA, "TooLarge", "dim[2]")
case("n2_huge_data", "n2_huge_data.nii", nifti2(dims=(1 << 20, 1 << 20, 1 << 10)) + DATA,
     "TooLarge", "dim")
case("datatype_complex64", "datatype_complex64.nii", nifti1(datatype=32, bitpix=64) + DATA,
     "UnsupportedDatatype", "datatype")
case("datatype_rgb24", "datatype_rgb24.nii", nifti1(datatype=128, bitpix=24) + DATA,
     "UnsupportedDatatype", "datatype")
case("datatype_float128", "datatype_float128.nii", nifti1(datatype=1536, bitpix=128) + DATA,
     "UnsupportedDatatype", "datatype")
case("datatype_unknown", "datatype_unknown.nii", nifti1(datatype=3, bitpix=16) + DATA,
     "UnknownDatatype", "datatype")
case("bitpix_mismatch", "bitpix_mismatch.nii", nifti1(bitpix=8) + DATA, "BitpixMismatch",
     "bitpix")
case("vox_offset_past_end", "vox_offset_past_end.nii", nifti1(vox_offset=100000.0) + DATA,
     "Truncated", "vox_offset")
case("vox_offset_inside_header", "vox_offset_inside_header.nii",
     nifti1(vox_offset=200.0) + DATA, "BadField", "vox_offset")
case("vox_offset_negative", "vox_offset_negative.nii", nifti1(vox_offset=-352.0) + DATA,
     "Truncated", "vox_offset")
case("truncated_data", "truncated_data.nii", GOOD[:-10], "Truncated")
case("scl_inter_nan", "scl_inter_nan.nii", nifti1(slope=2.0, inter=float("nan")) + DATA,
     "BadField", "scl_inter")
case("extension_size_too_small", "extension_size_too_small.nii",
     nifti1(vox_offset=368.0, extender=b"\1\0\0\0") + struct.pack("<ii", 3, 6) + b"\0" * 8 + DATA,
     "BadExtension", "esize")
case("extension_past_vox_offset", "extension_past_vox_offset.nii",
     nifti1(vox_offset=368.0, extender=b"\1\0\0\0") + struct.pack("<ii", 1000, 6) + b"\0" * 8
     + DATA, "BadExtension", "esize")
case("qform_not_unit", "qform_not_unit.nii",
     nifti1(qform_code=1, sform_code=0, quatern=(0.9, 0.9, 0.9)) + DATA, "BadField", "quatern_b")
case("n2_bad_eol", "n2_bad_eol.nii", nifti2(magic=b"n+2\0abcd") + DATA, "BadMagic", "magic")
case("n2_truncated_header", "n2_truncated_header.nii", nifti2()[:300], "Truncated")
case("gz_truncated", "gz_truncated.nii.gz", gz(GOOD)[:-30], "Truncated")
case("gz_header_only", "gz_header_only.nii.gz", gz(GOOD[:200]), "Truncated")
corrupt = bytearray(gz(GOOD))
corrupt[10] |= 0b110  # first deflate block: BTYPE 11 is reserved (invalid)
case("gz_corrupt_deflate", "gz_corrupt_deflate.nii.gz", bytes(corrupt), "Gzip")
bad_crc = bytearray(gz(GOOD))
bad_crc[-8] ^= 0xFF
case("gz_bad_crc", "gz_bad_crc.nii.gz", bytes(bad_crc), "Gzip")
# The trailer's ISIZE claims the size the header declares, but the stream holds 20 bytes less
# (a check of the whole-buffer inflate, which trusts neither).
isize_lies = bytearray(gz(GOOD[:-20]))
isize_lies[-4:] = struct.pack("<I", len(GOOD))
case("gz_isize_lies", "gz_isize_lies.nii.gz", bytes(isize_lies), "Gzip")
# A second member after a first that holds everything: its data are extra.
case("gz_extra_member", "gz_extra_member.nii.gz", gz(GOOD) + gz(b"extra"), "Ok")
case("gz_hostile_size", "gz_hostile_size.nii.gz", gz(nifti1(dims=(2000, 2000, 2000)) + DATA),
     "Truncated", "dim")
case("gz_bad_method", "gz_bad_method.nii.gz", b"\x1f\x8b\x07" + gz(GOOD)[3:], "Gzip")
case("gz_vox_offset_past_end", "gz_vox_offset_past_end.nii.gz",
     gz(nifti1(vox_offset=100000.0) + DATA), "Truncated", "vox_offset")
case("gz_n2_vox_offset_huge", "gz_n2_vox_offset_huge.nii.gz",
     gz(nifti2(vox_offset=1 << 62) + DATA), "Truncated", "vox_offset")
case("gz_trailing_garbage", "gz_trailing_garbage.nii.gz", gz(GOOD) + b"garbage!", "Gzip")
case("gz_control_padded", "gz_control_padded.nii.gz", gz(GOOD) + b"\0" * 64, "Ok")
case("pair_missing_img", "pair_missing_img.hdr", nifti1(magic=b"ni1\0", vox_offset=0.0), "Io")
case("not_a_nifti_name", "not_a_nifti_name.txt", GOOD, "BadPath")


def main():
    for old in HERE.glob("*"):
        if old.name != "make_corpus.py":
            old.unlink()
    for name, filename, content, kind, field in CASES:
        (HERE / filename).write_bytes(content)
        (HERE / f"{name}.expected").write_text(f"file: {filename}\nkind: {kind}\nfield: {field}\n")
    (HERE / "control_valid_pair.img").write_bytes(DATA)
    # A pair whose .img is too short.
    (HERE / "pair_truncated_img.hdr").write_bytes(nifti1(magic=b"ni1\0", vox_offset=0.0))
    (HERE / "pair_truncated_img.img").write_bytes(DATA[:50])
    (HERE / "pair_truncated_img.expected").write_text(
        "file: pair_truncated_img.hdr\nkind: Truncated\nfield: -\n")
    print(f"{len(CASES) + 1} cases")


if __name__ == "__main__":
    main()
