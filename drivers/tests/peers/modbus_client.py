"""Modbus TCP client peer (pymodbus 3.16.1) for linectl-drivers tests.

Usage: modbus_client.py PORT OP...
  read ADDR COUNT       print the registers, comma-separated
  write ADDR V1,V2,...  write multiple registers (function 16)
  writeone ADDR V       write a single register (function 6)
Each op prints one line: the values, "ok", or "exception CODE". Exit 2 when the
connection fails.
"""
import sys

from pymodbus.client import ModbusTcpClient
from pymodbus.pdu import ExceptionResponse


def main() -> int:
    port = int(sys.argv[1])
    ops = sys.argv[2:]
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=3, retries=0)
    if not client.connect():
        print("connect failed", flush=True)
        return 2
    i = 0
    while i < len(ops):
        op = ops[i]
        if op == "read":
            rr = client.read_holding_registers(int(ops[i + 1]), count=int(ops[i + 2]), device_id=1)
            i += 3
        elif op == "write":
            rr = client.write_registers(int(ops[i + 1]), [int(v) for v in ops[i + 2].split(",")], device_id=1)
            i += 3
        elif op == "writeone":
            rr = client.write_register(int(ops[i + 1]), int(ops[i + 2]), device_id=1)
            i += 3
        else:
            print("unknown op", op, flush=True)
            return 3
        if isinstance(rr, ExceptionResponse) or rr.isError():
            print("exception", getattr(rr, "exception_code", "?"), flush=True)
        elif op == "read":
            print(",".join(str(v) for v in rr.registers), flush=True)
        else:
            print("ok", flush=True)
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
