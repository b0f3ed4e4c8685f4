"""Flush-to-zero for the CPU kernels: the floating-point control word, from Numba code.

Subnormal floats (|x| < 1.2e-38 in float32) take a microcode assist on x86 that costs
~100 cycles per vector operation. An online learner makes them without doing anything
wrong: gradients of saturated gates are ~1e-36, Adam squares them and gradient clipping
scales them further. Measured on one stream with Adam: 65-100k events/s for the first
~90k events, then ~30k as subnormals spread through the moments. GPUs flush subnormals to
zero under fast math; `kernels_cpu.process_batch` does the same on x86 by setting MXCSR's
FTZ (results flush to zero) and DAZ (inputs read as zero) bits for its duration and
restoring the caller's word before it returns, so NumPy and Python keep IEEE gradual
underflow. Results differ from unflushed arithmetic only where a value was subnormal,
i.e. ~1e-38 from zero. Off x86 (e.g. AArch64, where subnormals cost no assist) both
functions compile to nothing and the kernels run in the default environment.
"""

from __future__ import annotations

import platform

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

X86 = platform.machine().lower() in {"x86_64", "amd64", "i386", "i686"}
FLUSH_SUBNORMALS = 0x8040  # MXCSR bits: FTZ (15) | DAZ (6)

_I32 = ir.IntType(32)


def _call_mxcsr(builder, name: str, slot) -> None:
    """llvm.x86.sse.{st,ld}mxcsr: store the control word to / load it from `slot` (i32*)."""
    i8p = ir.IntType(8).as_pointer()
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p]), name)
    builder.call(fn, [builder.bitcast(slot, i8p)])


@intrinsic
def get_fp_control(typingctx):
    """The calling thread's MXCSR as an int64 (0 off x86)."""
    def codegen(context, builder, signature, args):
        if not X86:
            return ir.Constant(ir.IntType(64), 0)
        slot = cgutils.alloca_once(builder, _I32)
        _call_mxcsr(builder, "llvm.x86.sse.stmxcsr", slot)
        return builder.zext(builder.load(slot), ir.IntType(64))
    return types.int64(), codegen


@intrinsic
def set_fp_control(typingctx, word):
    """Load `word` (from get_fp_control, possibly | FLUSH_SUBNORMALS) into MXCSR."""
    if not isinstance(word, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        if X86:
            slot = cgutils.alloca_once(builder, _I32)
            value = context.cast(builder, args[0], signature.args[0], types.int64)
            builder.store(builder.trunc(value, _I32), slot)
            _call_mxcsr(builder, "llvm.x86.sse.ldmxcsr", slot)
        return context.get_dummy_value()
    return types.none(word), codegen
