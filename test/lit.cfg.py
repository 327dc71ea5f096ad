# lit configuration of the moe tests: IR tests (.mlir) run through moe-opt.
import os

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "MOE"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".moe", ".test"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = config.moe_obj_root
config.excludes = ["CMakeLists.txt", "Inputs", "lit.cfg.py", "lit.site.cfg.py", "unit", "README.md", "extract_snippets.py", "c_api_main.c", "c_api_train_main.c", "check_png.py", "spec_reference.py", "write_tensors.py", "edit_tensors.py", "make_hf_checkpoint.py", "mesh_check.py", "hand_computed.moe", "routing-f32.test.moe"]

llvm_config.use_default_substitutions()
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)

config.substitutions.append(("%moe_src_root", config.moe_src_root))
config.substitutions.append(("%moe_tools_dir", config.moe_tools_dir))
config.substitutions.append(("%moe_lib_dir", config.moe_lib_dir))
config.substitutions.append(("%cc", config.moe_c_compiler))
# The C++ compiler, MLIR's headers and mlir-tblgen, for the tests that build a
# documented snippet against the tree (REQUIRES: cxx-compiler).
config.substitutions.append(("%cxx", config.moe_cxx_compiler))
config.substitutions.append(("%mlir_include_dir", config.mlir_include_dirs.split(";")[0]))
import shutil as _shutil
_tblgen = config.mlir_tblgen
if not os.path.isabs(_tblgen):
    _tblgen = _shutil.which(_tblgen, path=config.llvm_tools_dir) or _shutil.which(_tblgen) or _tblgen
config.substitutions.append(("%mlir_tblgen", _tblgen))
if os.path.exists(config.moe_cxx_compiler) and os.path.exists(_tblgen):
    config.available_features.add("cxx-compiler")

tools = [ToolSubst("moe-opt", unresolved="fatal"), ToolSubst("moec", unresolved="fatal"),
         ToolSubst("moe-run", unresolved="fatal"), ToolSubst("moe-checkpoint", unresolved="fatal")]
llvm_config.add_tool_substitutions(tools, [config.moe_tools_dir])

# The CUDA toolkit's libdevice, which GPU targets link (REQUIRES: cuda-toolkit),
# and its assembler, for the PTX tests (REQUIRES: ptxas); without them those
# tests are reported UNSUPPORTED, not passed.
def _libdevice():
    roots = [os.environ.get(v) for v in ("CUDA_HOME", "CUDA_PATH", "CUDA_ROOT")]
    roots += ["/usr/local/cuda", "/usr/lib/cuda", "/usr/lib/nvidia-cuda-toolkit", "/opt/cuda"]
    for root in filter(None, roots):
        for sub in ("nvvm/libdevice/libdevice.10.bc", "libdevice/libdevice.10.bc"):
            if os.path.exists(os.path.join(root, sub)):
                return True
    return False
if _libdevice():
    config.available_features.add("cuda-toolkit")
else:
    lit_config.note("no CUDA toolkit (libdevice.10.bc): the GPU target tests are unsupported")
import shutil
ptxas = shutil.which("ptxas") or ("/usr/local/cuda/bin/ptxas" if os.path.exists("/usr/local/cuda/bin/ptxas") else None)
if ptxas:
    config.available_features.add("ptxas")
    config.substitutions.append(("ptxas", ptxas))
else:
    lit_config.note("ptxas not found (no CUDA toolkit): the PTX assembly tests are unsupported")


# A usable CUDA GPU (the driver loads, cuInit succeeds, one device or more):
# tests that run GPU code say what they expect with and without one.
def _cuda_gpu():
    import ctypes
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
        count = ctypes.c_int(0)
        return cuda.cuInit(0) == 0 and cuda.cuDeviceGetCount(ctypes.byref(count)) == 0 and count.value > 0
    except OSError:
        return False
if _cuda_gpu():
    config.available_features.add("cuda-gpu")

# Open MPI's launcher, for the multi-rank tests (REQUIRES: mpi); without it
# they are reported UNSUPPORTED, not passed.
if shutil.which("mpirun"):
    config.available_features.add("mpi")
    # Its own session directory, not Open MPI's default one under /tmp that
    # concurrent jobs share (a start-up has failed there: "orte_session_dir failed").
    import tempfile
    config.environment["OMPI_MCA_orte_tmpdir_base"] = tempfile.mkdtemp(prefix="ompi-lit-", dir="/tmp")
    config.substitutions.append(("%mpirun", "mpirun --oversubscribe --allow-run-as-root"))
else:
    lit_config.note("mpirun not found (no Open MPI): the multi-rank tests are unsupported")
