"""Safety of what ecgssl writes and reads.

- ``outputs``: an output directory must be new, empty, or written by ecgssl (marker file);
  anything else is refused before a file is touched.
- ``locks``: one writer per output directory (``in use by PID ...``).
- ``artefacts``: sha256-verified safetensors + JSON files (encoders, segmentation and
  fine-tuned models) and store arrays.
- ``workers``: loader / pool worker processes die with their parent.
"""

from ecgssl.safety.artefacts import (
    file_digests,
    load_model_file,
    read_json_file,
    save_model_file,
    sha256_file,
    verify_digests,
)
from ecgssl.safety.locks import output_lock
from ecgssl.safety.outputs import (
    MARKER,
    claim_output_dir,
    ecgssl_kind,
    guard_output_dir,
    write_marker,
)
from ecgssl.safety.workers import die_with_parent

__all__ = ["MARKER", "claim_output_dir", "die_with_parent", "ecgssl_kind", "file_digests",
           "guard_output_dir", "load_model_file", "output_lock", "read_json_file",
           "save_model_file", "sha256_file", "verify_digests", "write_marker"]
