"""Modbus TCP server peer (pymodbus 3.16.1) for linectl-drivers tests.

Usage: modbus_server.py PORT [ADDR=VALUE ...]
Serves 200 holding registers (0-based protocol addresses 0..199) for unit id 1,
pre-set with ADDR=VALUE pairs. Reads past 199 get exception 2 (illegal address).
Runs until killed.
"""
import sys

from pymodbus.datastore import (
    ModbusDeviceContext,
    ModbusSequentialDataBlock,
    ModbusServerContext,
)
from pymodbus.server import StartTcpServer


def main() -> None:
    port = int(sys.argv[1])
    values = [0] * 200
    for pair in sys.argv[2:]:
        addr, value = pair.split("=")
        values[int(addr)] = int(value)
    # pymodbus stores protocol address N at block index N+1: the block starts at 1.
    block = ModbusSequentialDataBlock(1, values)
    context = ModbusServerContext(devices={1: ModbusDeviceContext(hr=block)}, single=False)
    print("serving", port, flush=True)
    StartTcpServer(context=context, address=("127.0.0.1", port))


if __name__ == "__main__":
    main()
