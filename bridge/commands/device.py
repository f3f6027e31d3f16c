"""``scan`` and ``simulate``: find wearables; run the virtual one for other programs."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


async def scan(timeout: float, console: Console) -> int:
    """List BLE wearables advertising the glutebridge service."""
    from bridge.sources import scan as ble_scan

    found = await ble_scan(timeout)
    if not found:
        console.print(f"no glutebridge wearable found in {timeout:g} s; is it switched on, "
                      "in range and not connected to another host?")
        return 1
    t = Table(show_edge=False)
    for col in ("address", "name", "RSSI", "open with"):
        t.add_column(col)
    for d in found:
        t.add_row(d.address, d.name, f"{d.rssi} dBm", f"glutebridge stream ble://{d.address}")
    console.print(t)
    return 0


async def simulate(target: str, *, scenario: str, seed: int, speed: float, loop: bool,
                   faults, console: Console) -> dict:
    """Serve the virtual wearable on ``target`` (serial, tcp://HOST:PORT, ble).

    Like a wearable switched off at the end of a session, the simulator ends when its
    scenario has been played (unless ``loop``): it disconnects its clients, says so and
    returns; a connected ``glutebridge stream`` reports the lost link and keeps trying to
    reconnect until stopped.  Ctrl-C (or SIGTERM) ends it the same way.
    """
    import asyncio

    from bridge.simulator import scenarios
    from bridge.simulator.serve import serve

    signals = scenarios.build(scenario, seed=seed)
    console.print(f"virtual wearable: scenario '{scenario}' ({signals.duration:.0f} s), "
                  f"{speed:g}x speed" + (", looping" if loop else "")
                  + "; plays from the first host's connection; Ctrl-C stops")
    try:
        result = await serve(target, signals, faults, speed=speed, loop=loop)
    except asyncio.CancelledError:
        from bridge import _compat

        # Ctrl-C, or SIGTERM (kill, timeout, a service stop) that _compat.run turned into it
        console.print(f"simulator stopped ({_compat.stopped_by or 'Ctrl-C'}); "
                      "clients disconnected")
        raise
    console.print(f"scenario finished ({signals.duration:.0f} s played); clients "
                  "disconnected — run it again, or use --loop to keep serving")
    return result
