#!/usr/bin/env python3
"""serial_pyserial: bench/serial.sh's peer for bench/serial_weft (issue #13): pyserial 3.5
(python3-serial) on the same line, doing the same work.

    serial_pyserial.py --device PATH --bytes N --direction in|out

in   reads N bytes with Serial.read(65536) (timeout=None: select, then read, until 64 KiB or
     the end) and checks each against the pattern (byte i is i % 251);
out  writes N bytes of the pattern with Serial.write, 64 KiB per call, then Serial.flush().
Prints "ready" once the port is open (115200 bps, 8N1; pyserial's raw mode), then
"done cpu_us=C", C being its own CPU time (time.process_time) from "ready" to "done".
"""
import argparse
import sys
import time

import serial

PERIOD = 251
CHUNK = 65536


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", required=True)
    ap.add_argument("--bytes", type=int, required=True)
    ap.add_argument("--direction", choices=("in", "out"), required=True)
    a = ap.parse_args()
    pattern = bytes(i % PERIOD for i in range(PERIOD + CHUNK))
    view = memoryview(pattern)
    port = serial.Serial(a.device, baudrate=115200, timeout=None)
    print("ready", flush=True)
    cpu0 = time.process_time()
    done = 0
    if a.direction == "in":
        while done < a.bytes:
            data = port.read(min(CHUNK, a.bytes - done))
            start = done % PERIOD
            if not data or view[start:start + len(data)] != data:
                sys.exit("serial_pyserial: wrong bytes at offset %d" % done)
            done += len(data)
    else:
        while done < a.bytes:
            n = min(CHUNK, a.bytes - done)
            start = done % PERIOD
            done += port.write(view[start:start + n])
        port.flush()
    print("done cpu_us=%.0f" % ((time.process_time() - cpu0) * 1e6), flush=True)
    port.close()


if __name__ == "__main__":
    main()
