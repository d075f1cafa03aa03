"""Big images in tiles: the one rule that cuts a grid into cores and context windows (every tiled method uses it,
and the format specifies it), and handing a tile's freed memory back to the system. A network's activations grow
with the pixels it sees, so a method bounds its peak memory by running its networks window by window and
keeping only each window's core."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Methods tile images of more pixels than this (smaller images run whole, as before tiling existed).
TILE_ABOVE_PIXELS = 1 << 20


@dataclass(frozen=True)
class Tile:
    """A core [y0, y1) x [x0, x1) and its window [ya, yb) x [xa, xb) (the core grown by the halo, cut at the
    grid's bounds), in the grid's units."""

    y0: int
    y1: int
    x0: int
    x1: int
    ya: int
    yb: int
    xa: int
    xb: int

    @property
    def window(self) -> tuple[slice, slice]:
        return slice(self.ya, self.yb), slice(self.xa, self.xb)

    @property
    def core(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    @property
    def core_in_window(self) -> tuple[slice, slice]:
        """The core's place inside the window's output."""
        return slice(self.y0 - self.ya, self.y1 - self.ya), slice(self.x0 - self.xa, self.x1 - self.xa)


def plan(height: int, width: int, core: int, halo: int, *, top: int = 0, left: int = 0,
         bounds: tuple[int, int, int, int] | None = None) -> list[Tile]:
    """Cores of ``core`` x ``core`` on a grid from (top, left) over ``height`` x ``width`` (the last row and column
    cut at the edge), in row-major order; each window is its core grown by ``halo`` on every side and cut at
    ``bounds`` (y_min, y_max, x_min, x_max; default: the area itself)."""
    if core < 1 or halo < 0:
        raise ValueError(f"tile core {core} / halo {halo}")
    by0, by1, bx0, bx1 = bounds if bounds is not None else (top, top + height, left, left + width)
    tiles = []
    for y0 in range(top, top + height, core):
        y1 = min(y0 + core, top + height)
        for x0 in range(left, left + width, core):
            x1 = min(x0 + core, left + width)
            tiles.append(Tile(y0, y1, x0, x1, max(by0, y0 - halo), min(by1, y1 + halo),
                              max(bx0, x0 - halo), min(bx1, x1 + halo)))
    return tiles


M_MMAP_THRESHOLD = -3              # glibc's mallopt parameter
MMAP_THRESHOLD = 1 << 20


def trim_heap() -> None:
    """Hand freed memory back to the system between tiles: glibc keeps a tile's hundreds of MB of network
    activations (tiles differ in shape) as a fragmented heap otherwise, and the process grows tile after tile.
    The first call also fixes glibc's mmap threshold at 1 MiB (for the whole process): by default it rises with
    every large block freed, up to 32 MiB, and activations of that size then land on the heap too."""
    global _MALLOC_TRIM
    if _MALLOC_TRIM is None:
        import ctypes
        import ctypes.util

        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _MALLOC_TRIM = libc.malloc_trim
            libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        except (OSError, AttributeError):           # not glibc (macOS, Windows, musl): nothing to do
            _MALLOC_TRIM = False
    if _MALLOC_TRIM:
        _MALLOC_TRIM(0)


_MALLOC_TRIM: Any = None
