"""Push a docroot to two receivers, rsync style: the second push sends only what changed.

Makes a small docroot, starts two SyncReceivers (web2 and web3) on free ports, pushes the
whole tree, changes a few bytes of one big file, pushes again and prints the statistics:
the second push matches most of the big file against the copy the receivers already have.

    .venv/bin/python examples/push_docroot.py
"""

import asyncio
import secrets
import tempfile
from pathlib import Path

from pylamp.sync import SyncReceiver, SyncStats, push

KEY = secrets.token_bytes(32)  # the shared secret; a file both sides read, in a real setup


def show(title: str, results: list[SyncStats]) -> None:
    print(title)
    for st in results:
        print(
            f"  {st.address}: {st.files_sent} files sent, literal {st.literal_bytes} bytes, "
            f"matched {st.matched_bytes} bytes, {st.bytes_sent} bytes on the wire"
            + ("" if st.ok else f", ERROR {st.error or st.errors}")
        )


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        docroot = Path(tmp, "web1")
        (docroot / "img").mkdir(parents=True)
        (docroot / "index.html").write_text("<h1>Hello from web1</h1>\n")
        big = docroot / "img" / "photo.bin"
        big.write_bytes(secrets.token_bytes(200_000))  # random: compression cannot help
        async with (
            SyncReceiver(Path(tmp, "web2"), "127.0.0.1", 0, key=KEY) as web2,
            SyncReceiver(Path(tmp, "web3"), "127.0.0.1", 0, key=KEY) as web3,
        ):
            receivers = [web2.address, web3.address]
            show("first push (everything is new):", await push(docroot, receivers, key=KEY))

            data = bytearray(big.read_bytes())
            data[100_000:100_005] = b"EDIT!"  # five bytes in the middle of 200 kB
            big.write_bytes(data)
            (docroot / "index.html").write_text("<h1>Hello again from web1</h1>\n")
            show("second push (one small edit):", await push(docroot, receivers, key=KEY))

            for root in (web2.root, web3.root):
                same = Path(root, "img", "photo.bin").read_bytes() == bytes(data)
                print(f"  {Path(root).name}: photo.bin identical to web1's: {same}")
    print("receivers stopped")


if __name__ == "__main__":
    asyncio.run(main())
