"""A faithful, offline fake of KIE.ai for tests, demos and benchmarks (kie-api.md "Simulator spec" S1-S11).

Use it in process with ``httpx2.AsyncClient(transport=SandboxTransport(sim))``, or over real HTTP
with ``uvicorn.run(create_app(Simulator()), host="127.0.0.1", port=N)``. Steer it from Python
(``sim.advance``, ``sim.faults``, ``sim.config``) or over HTTP under ``/__sim``.
"""

from .app import create_app
from .config import SANDBOX_API_KEY, SimConfig
from .errors import ConnectionDropped, KieError
from .faults import Fault, parse_fault
from .persist import state_path
from .state import SimRequest, Simulator, Task
from .transport import SandboxTransport

__all__ = [
    "SANDBOX_API_KEY",
    "ConnectionDropped",
    "Fault",
    "KieError",
    "SandboxTransport",
    "SimConfig",
    "SimRequest",
    "Simulator",
    "Task",
    "create_app",
    "parse_fault",
    "state_path",
]
