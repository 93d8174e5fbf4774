"""Client-side encryption of a backup file: AES-256-GCM in chunks, streamed.

Layout: MAGIC, a 16-byte salt, an 8-byte nonce prefix, then records of a 4-byte big-endian
length and one chunk's ciphertext (with its tag). The key is derived from the stack's secret
with HKDF-SHA256 and the file's salt. Each chunk's nonce is the prefix and its index; its
associated data is the index and a last-chunk flag, so reordered, dropped or truncated chunks
fail to decrypt.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"MLOPSBK1"
SUFFIX = ".enc"
CHUNK = 4 * 1024 * 1024
_LENGTH = struct.Struct(">I")
# No chunk this module writes comes near this; a larger length is an altered file, refused
# before a buffer of that size is allocated.
_MAX_SEALED = 64 * 1024 * 1024


class DecryptionError(Exception):
    """The file is not an encrypted backup, was altered, or the key is wrong."""


def _cipher(secret: str, salt: bytes) -> AESGCM:
    kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"mlops-platform backup")
    return AESGCM(kdf.derive(secret.encode()))


def _associated(index: int, last: bool) -> bytes:
    return struct.pack(">IB", index, int(last))


def encrypt(source: Path, target: Path, secret: str) -> None:
    salt, prefix = os.urandom(16), os.urandom(8)
    cipher = _cipher(secret, salt)
    with source.open("rb") as plain, target.open("wb") as out:
        out.write(MAGIC + salt + prefix)
        chunk, index = plain.read(CHUNK), 0
        while True:
            following = plain.read(CHUNK)
            last = not following
            sealed = cipher.encrypt(
                prefix + struct.pack(">I", index), chunk, _associated(index, last)
            )
            out.write(_LENGTH.pack(len(sealed)) + sealed)
            if last:
                return
            chunk, index = following, index + 1


def decrypt(source: Path, target: Path, secret: str) -> None:
    """Decrypts `source` into `target`, or raises DecryptionError and leaves `target` as it
    was: the plain text goes to a file beside it that replaces it only once every chunk has
    decrypted."""
    partial = target.with_name(target.name + ".partial")
    try:
        _decrypt(source, partial, secret)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def _decrypt(source: Path, target: Path, secret: str) -> None:
    with source.open("rb") as sealed_file, target.open("wb") as out:
        header = sealed_file.read(len(MAGIC) + 24)
        if header[: len(MAGIC)] != MAGIC or len(header) != len(MAGIC) + 24:
            raise DecryptionError(f"{source.name}: not an encrypted backup")
        salt, prefix = header[len(MAGIC) : len(MAGIC) + 16], header[len(MAGIC) + 16 :]
        cipher = _cipher(secret, salt)
        index = 0
        while True:
            length = sealed_file.read(_LENGTH.size)
            if len(length) != _LENGTH.size:
                raise DecryptionError(f"{source.name}: truncated (no last chunk)")
            declared = _LENGTH.unpack(length)[0]
            if declared > _MAX_SEALED:
                raise DecryptionError(
                    f"{source.name}: chunk {index} claims {declared} bytes (altered file)"
                )
            sealed = sealed_file.read(declared)
            if len(sealed) != declared:
                raise DecryptionError(
                    f"{source.name}: truncated (chunk {index} holds {len(sealed)} of its "
                    f"{declared} bytes)"
                )
            last = not sealed_file.peek(1)
            try:
                chunk = cipher.decrypt(
                    prefix + struct.pack(">I", index), sealed, _associated(index, last)
                )
            except InvalidTag as error:
                raise DecryptionError(
                    f"{source.name}: chunk {index} does not decrypt (wrong key or altered file)"
                ) from error
            out.write(chunk)
            if last:
                return
            index += 1
