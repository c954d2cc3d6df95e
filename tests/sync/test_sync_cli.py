"""``python -m pylamp.sync serve`` and ``push`` end to end in subprocesses, with TLS."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from sync_trees import (
    KEY,
    PYTHON,
    REPO,
    key_file,
    sample_tree,
    snapshot,
    start_serve,
    write,
)

from pylamp.config import default_topology, dump_topology
from pylamp.sync import (
    SyncReceiver,
    SyncStats,
    client_tls_context,
    push,
    server_tls_context,
)
from pylamp.sync.__main__ import main


def run_push(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "pylamp.sync", "push", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0


def test_serve_and_push_with_json_report(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    sample_tree(src)
    keyf = key_file(tmp_path)
    rx, port = start_serve(dst, keyf)
    try:
        out = run_push(str(src), f"127.0.0.1:{port}", "127.0.0.1:1", "--key", str(keyf), "--json")
        assert out.returncode == 1  # one receiver was down
        doc = json.loads(out.stdout)
        good, down = doc["receivers"]
        assert good["ok"] and good["files_sent"] == 6 and good["error"] is None
        assert not down["ok"] and "refused" in down["error"]
        assert snapshot(dst) == snapshot(src)
        write(src, "cache/junk.html", "excluded")
        text = run_push(str(src), f"127.0.0.1:{port}", "--key", str(keyf), "--exclude", "cache/")
        assert text.returncode == 0, text.stderr
        assert "Number of regular files transferred: 0" in text.stdout
        assert "speedup is" in text.stdout
        assert not (dst / "cache").exists()
    finally:
        stop(rx)


def test_bad_arguments_are_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keyf = key_file(tmp_path)
    with pytest.raises(SystemExit, match="not a directory"):
        main(["push", str(tmp_path / "missing"), "127.0.0.1:1", "--key", str(keyf)])
    short = tmp_path / "short.key"
    short.write_text("short")
    assert main(["push", str(tmp_path), "127.0.0.1:1", "--key", str(short)]) == 2
    assert "at least 16 bytes" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="give SRC and HOST:PORT"):
        main(["push", str(tmp_path), "--key", str(keyf)])
    with pytest.raises(SystemExit, match="--key"):
        main(["serve", "--root", str(tmp_path), "--listen", "127.0.0.1:0"])


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl command."""
    openssl = shutil.which("openssl")
    assert openssl is not None, "the openssl command is needed to make a test certificate"
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_push_over_tls(tmp_path: Path, certs: tuple[Path, Path]) -> None:
    cert, key = certs
    src, dst = tmp_path / "src", tmp_path / "dst"
    sample_tree(src)
    keyf = key_file(tmp_path)
    rx, port = start_serve(dst, keyf, "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        ok = run_push(str(src), f"127.0.0.1:{port}", "--key", str(keyf), "--tls-ca", str(cert))
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert snapshot(dst) == snapshot(src)

        # Plain TCP to a TLS receiver fails clearly; so does a CA that did not sign it.
        async def refused() -> tuple[SyncStats, SyncStats]:
            addr = [("127.0.0.1", port)]
            [plain] = await push(src, addr, key=KEY, timeout=1)
            other_ca = client_tls_context("/etc/ssl/certs/ca-certificates.crt")
            [other] = await push(src, addr, key=KEY, tls=other_ca)
            return plain, other

        plain, other = asyncio.run(refused())
        assert plain.error is not None
        assert other.error is not None and "CERTIFICATE_VERIFY_FAILED" in other.error
    finally:
        stop(rx)


async def test_tls_with_client_certificates(tmp_path: Path, certs: tuple[Path, Path]) -> None:
    cert, key = certs
    src, dst = tmp_path / "src", tmp_path / "dst"
    sample_tree(src)
    server = server_tls_context(cert, key, ca=str(cert))  # senders must show a cert it signed
    async with SyncReceiver(dst, key=KEY, tls=server) as rx:
        [anon] = await push(src, [rx.address], key=KEY, tls=client_tls_context(str(cert)))
        assert anon.error is not None and snapshot(dst) != snapshot(src)
        with_cert = client_tls_context(str(cert), str(cert), str(key))
        [st] = await push(src, [rx.address], key=KEY, tls=with_cert)
        assert st.ok, st
    assert snapshot(dst) == snapshot(src)


def test_serve_and_push_from_the_topology(tmp_path: Path) -> None:
    topo = default_topology()
    data = tmp_path / "data"
    web = tuple(
        dataclasses.replace(w, host="127.0.0.1", port=18080 + i, sync_port=(2, 0, 1)[i])
        for i, w in enumerate(topo.web)
    )
    topo = dataclasses.replace(
        topo, web=web, cluster=dataclasses.replace(topo.cluster, data_dir=str(data))
    )
    config = tmp_path / "cluster.toml"
    config.write_text(dump_topology(topo))
    data.mkdir()
    (data / "sync.key").write_text("a-cluster-wide-shared-key-0123456789\n")
    sample_tree(data / "web1" / "www")
    proc = subprocess.Popen(
        [PYTHON, "-m", "pylamp.sync", "serve", "--config", str(config), "--name", "web2"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on 127.0.0.1:"), line
        port = int(line.rsplit(":", 1)[1])
        out = run_push("--config", str(config), "--json", "-q")
        # The topology names web2 (port 0 here, so not reachable) and web3 (down).
        assert out.returncode == 1
        assert [r["ok"] for r in json.loads(out.stdout)["receivers"]] == [False, False]
        www = str(data / "web1" / "www")
        out = run_push(www, f"127.0.0.1:{port}", "--config", str(config), "--json")
        assert out.returncode == 0, out.stderr
        assert snapshot(data / "web2" / "www") == snapshot(data / "web1" / "www")
    finally:
        stop(proc)
