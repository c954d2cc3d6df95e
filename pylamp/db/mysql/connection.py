"""The server side of one MySQL client connection, as a sans-IO state machine.

Feed it the bytes the client sent (:meth:`ServerConnection.receive_data`), take events out
(:meth:`~ServerConnection.next_event`), answer each command with :meth:`~ServerConnection.send`,
and write :meth:`~ServerConnection.data_to_send` to the socket. ``send`` only queues, so a shell
that answers a batch of events writes them with one ``transport.write``. The core never reads
the clock, the network or the random source: the nonce and connection id are passed in.

Things the core answers on its own, because they are protocol rather than SQL: the auth switch
to mysql_native_password, COM_SET_OPTION, the prepared-statement bookkeeping (COM_STMT_PREPARE,
_CLOSE, _RESET, _SEND_LONG_DATA; COM_STMT_EXECUTE comes out as a Query whose result set is sent
in the binary row format) and unknown commands (ERR 1047).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from .auth import NATIVE_PLUGIN
from .events import (
    NEED_DATA,
    Error,
    Event,
    FieldList,
    InitDb,
    Login,
    Ok,
    Ping,
    Query,
    Quit,
    ResetConnection,
    Response,
    ResultSet,
    Statistics,
    StatisticsText,
)
from .handshake import (
    CLIENT_DEPRECATE_EOF,
    CLIENT_MULTI_STATEMENTS,
    CLIENT_PLUGIN_AUTH,
    SERVER_CAPABILITIES,
    SERVER_VERSION,
    build_auth_switch_request,
    build_handshake,
    parse_handshake_response,
)
from .packets import PacketReader, ProtocolError, append_packet, next_seq, read_fixed_int
from .prepared import (
    PreparedStatement,
    append_binary_result_set,
    find_placeholders,
    parse_execute,
    prepare_ok,
)
from .results import (
    SERVER_MORE_RESULTS_EXISTS,
    ColumnLike,
    append_result_set,
    column_definition,
    eof_packet,
    err_packet,
    ok_packet,
)

__all__ = ["LocalProtocolError", "ServerConnection", "State", "refusal"]

COM_QUIT = 0x01
COM_INIT_DB = 0x02
COM_QUERY = 0x03
COM_FIELD_LIST = 0x04
COM_STATISTICS = 0x09
COM_PING = 0x0E
COM_STMT_PREPARE = 0x16
COM_STMT_EXECUTE = 0x17
COM_STMT_SEND_LONG_DATA = 0x18
COM_STMT_CLOSE = 0x19
COM_STMT_RESET = 0x1A
COM_SET_OPTION = 0x1B
COM_STMT_FETCH = 0x1C
COM_RESET_CONNECTION = 0x1F

_STATEMENT_COMMANDS = {
    COM_STMT_PREPARE,
    COM_STMT_EXECUTE,
    COM_STMT_SEND_LONG_DATA,
    COM_STMT_CLOSE,
    COM_STMT_RESET,
    COM_STMT_FETCH,
}
_MAX_STATEMENTS = 16382  # MySQL's max_prepared_stmt_count


class State(enum.Enum):
    """Where the connection is; see the transition table below."""

    HANDSHAKE = "handshake"  # greeting sent, waiting for the HandshakeResponse
    AUTH_SWITCH = "auth_switch"  # auth switch request sent, waiting for the new answer
    AUTHENTICATING = "authenticating"  # Login handed out, waiting for send(Ok | Error)
    COMMAND = "command"  # idle, waiting for the next command
    RESPONDING = "responding"  # a command handed out, waiting for its answer
    CLOSED = "closed"  # Quit, failed login or protocol error: nothing more happens

    # Enum's own __hash__ is Python code (hash of the name), paid on every transition lookup;
    # members are singletons compared by identity, so the identity hash (C) agrees with ==
    __hash__ = object.__hash__


# The states the per-command paths test, as module names: an Enum class attribute is looked up
# through EnumType's __getattr__ hook (~100 ns in 3.11, a global ~10 ns), several per command.
_COMMAND, _RESPONDING, _AUTHENTICATING, _CLOSED = (
    State.COMMAND,
    State.RESPONDING,
    State.AUTHENTICATING,
    State.CLOSED,
)


class LocalProtocolError(Exception):
    """The caller used the core out of order (e.g. send() with no command pending)."""


# The whole protocol, one row per transition: (state, what happened) -> next state.
# "what happened" is an incoming message ("login", "switch", "command", "quit", "answered":
# a command the core answered itself) or a response passed to send() ("ok", "error", "result").
# Any ProtocolError moves to CLOSED. A pair missing here is a LocalProtocolError.
_TRANSITIONS: dict[tuple[State, str], State] = {
    (State.HANDSHAKE, "login"): State.AUTHENTICATING,
    (State.HANDSHAKE, "switch"): State.AUTH_SWITCH,
    (State.AUTH_SWITCH, "login"): State.AUTHENTICATING,
    (State.AUTHENTICATING, "ok"): State.COMMAND,
    (State.AUTHENTICATING, "error"): State.CLOSED,
    (State.COMMAND, "command"): State.RESPONDING,
    (State.COMMAND, "answered"): State.COMMAND,
    (State.COMMAND, "quit"): State.CLOSED,
    (State.RESPONDING, "ok"): State.COMMAND,
    (State.RESPONDING, "error"): State.COMMAND,
    (State.RESPONDING, "result"): State.COMMAND,
}


class ServerConnection:
    """Protocol state of one client connection (server side).

    ``scramble`` is the 20-byte nonce (see :func:`pylamp.db.mysql.auth.make_scramble`).
    The greeting is queued at construction: call :meth:`data_to_send` first.
    """

    def __init__(
        self,
        connection_id: int,
        scramble: bytes,
        *,
        server_version: str = SERVER_VERSION,
        max_packet: int = 64 * 1024 * 1024,
    ) -> None:
        self.connection_id = connection_id
        self.scramble = scramble
        self.state = State.HANDSHAKE
        self.capabilities = 0
        self.multi_statements = False
        self._deprecate_eof = False
        self._reader = PacketReader(max_packet)
        self._out = bytearray()
        self._seq = append_packet(
            self._out, build_handshake(connection_id, scramble, server_version=server_version), 0
        )
        self._pending_login: Login | None = None
        self._pending: Event | None = None
        self._statements: dict[int, PreparedStatement] = {}
        self._last_statement_id = 0
        self._binary = False  # the pending command is COM_STMT_EXECUTE: binary rows

    # -- input ------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Add bytes read from the client. ``b""`` means the client closed the connection."""
        if not data:
            if self.state is not State.CLOSED:
                self.state = State.CLOSED
                self._pending = Quit()
            return
        self._reader.feed(data)

    def next_event(self) -> Event:
        """The next client event, or NEED_DATA.

        Raises :class:`ProtocolError` for malformed input after queueing an ERR packet for the
        client: write :meth:`data_to_send`, then close the connection.
        """
        if self._pending is not None:
            event, self._pending = self._pending, None
            return event
        state = self.state
        if state is _RESPONDING or state is _AUTHENTICATING or state is _CLOSED:
            return NEED_DATA
        try:
            packet = self._reader.next_packet()
            if packet is None:
                return NEED_DATA
            seq, payload = packet
            if seq != (0 if state is _COMMAND else self._seq):
                raise ProtocolError("packets out of order", 1156, "08S01")
            self._seq = next_seq(seq, len(payload))
            if state is _COMMAND:
                return self._command(payload)
            return self._handshake(payload)
        except ProtocolError as exc:
            self._fail(exc)
            raise

    def _fail(self, exc: ProtocolError) -> None:
        if self.state is State.HANDSHAKE or self.state is State.AUTH_SWITCH:
            exc.errno, exc.sqlstate = 1043, "08S01"
            message = f"Bad handshake: {exc}"
        else:
            message = f"Malformed communication packet: {exc}"
        append_packet(self._out, err_packet(exc.errno, exc.sqlstate, message), self._seq)
        self.state = State.CLOSED

    def _handshake(self, payload: bytes) -> Event:
        if self.state is State.HANDSHAKE:
            response = parse_handshake_response(payload)
            self.capabilities = response.capabilities & SERVER_CAPABILITIES
            self.multi_statements = bool(self.capabilities & CLIENT_MULTI_STATEMENTS)
            self._deprecate_eof = bool(self.capabilities & CLIENT_DEPRECATE_EOF)
            login = Login(
                user=response.user,
                auth_response=response.auth_response,
                scramble=self.scramble,
                database=response.database,
                capabilities=self.capabilities,
                charset=response.charset,
                attributes=response.attributes,
            )
            plugin = response.plugin if self.capabilities & CLIENT_PLUGIN_AUTH else None
            if plugin is not None and plugin != NATIVE_PLUGIN:
                # Another plugin (caching_sha2_password, client_ed25519, ...): ask the client to
                # answer the same nonce the mysql_native_password way.
                self._pending_login = login
                self._seq = append_packet(
                    self._out, build_auth_switch_request(NATIVE_PLUGIN, self.scramble), self._seq
                )
                self._transition("switch")
                return self.next_event()
            self._transition("login")
            return login
        assert self._pending_login is not None
        login = self._pending_login
        self._pending_login = None
        self._transition("login")
        return Login(
            user=login.user,
            auth_response=payload,
            scramble=login.scramble,
            database=login.database,
            capabilities=login.capabilities,
            charset=login.charset,
            attributes=login.attributes,
        )

    def _command(self, payload: bytes) -> Event:
        if not payload:
            raise ProtocolError("empty command packet")
        command = payload[0]
        if command == COM_QUERY:
            self._transition("command")
            return Query(payload[1:].decode("utf-8", "surrogateescape"), self.multi_statements)
        if command == COM_PING:
            self._transition("command")
            return Ping()
        if command == COM_INIT_DB:
            self._transition("command")
            return InitDb(payload[1:].decode("utf-8", "surrogateescape"))
        if command == COM_QUIT:
            self._transition("quit")
            return Quit()
        if command == COM_FIELD_LIST:
            end = payload.find(b"\0", 1)
            if end < 0:
                raise ProtocolError("COM_FIELD_LIST without a NUL after the table name")
            self._transition("command")
            return FieldList(
                payload[1:end].decode("utf-8", "surrogateescape"),
                payload[end + 1 :].decode("utf-8", "surrogateescape"),
            )
        if command == COM_STATISTICS:
            self._transition("command")
            return Statistics()
        if command == COM_RESET_CONNECTION:
            self._transition("command")
            return ResetConnection()
        if command == COM_SET_OPTION:
            if len(payload) != 3 or payload[1] > 1 or payload[2]:
                self._answer(err_packet(1047, "08S01", "Unknown COM_SET_OPTION value"))
            else:
                self.multi_statements = payload[1] == 0
                self._answer(self._eof(2))
            return self.next_event()
        if command in _STATEMENT_COMMANDS:
            return self._statement_command(command, payload)
        self._answer(err_packet(1047, "08S01", f"Unknown command 0x{command:02x}"))
        return self.next_event()

    def _statement_command(self, command: int, payload: bytes) -> Event:
        # The prepared-statement commands (see prepared.py). Only EXECUTE reaches the caller,
        # as a Query whose answer send() encodes in the binary row format.
        statements = self._statements
        if command == COM_STMT_PREPARE:
            if len(statements) >= _MAX_STATEMENTS:
                self._answer(err_packet(1461, "42000", "Too many prepared statements"))
                return self.next_event()
            self._last_statement_id += 1
            sql = payload[1:].decode("utf-8", "surrogateescape")
            prepared = PreparedStatement(self._last_statement_id, sql, find_placeholders(sql))
            statements[prepared.statement_id] = prepared
            for part in prepare_ok(prepared, self._deprecate_eof, self._eof(2)):
                self._seq = append_packet(self._out, part, self._seq)
            self._transition("answered")
            return self.next_event()
        statement_id, _ = read_fixed_int(payload, 1, 4)
        if command == COM_STMT_EXECUTE:
            executed, sql = parse_execute(payload, statements)
            if executed is not None:
                self._binary = True
                self._transition("command")
                return Query(sql, multi_statements=False, prepared=True)
        elif command == COM_STMT_CLOSE:
            statements.pop(statement_id, None)
            self._transition("answered")  # COM_STMT_CLOSE has no response
            return self.next_event()
        elif command == COM_STMT_SEND_LONG_DATA:
            param, pos = read_fixed_int(payload, 5, 2)
            statement = statements.get(statement_id)
            if statement is not None:  # no response, not even an error
                statement.long_data.setdefault(param, bytearray()).extend(payload[pos:])
            self._transition("answered")
            return self.next_event()
        elif command == COM_STMT_RESET:
            statement = statements.get(statement_id)
            if statement is not None:
                statement.long_data.clear()
                self._answer(ok_packet(status=2))
                return self.next_event()
        else:  # COM_STMT_FETCH: results are always sent whole, there is no cursor to fetch
            self._answer(err_packet(1421, "HY000", "The statement has no open cursor"))
            return self.next_event()
        message = f"Unknown prepared statement handler ({statement_id}) given to mysqld_stmt"
        self._answer(err_packet(1243, "HY000", message))
        return self.next_event()

    def _answer(self, payload: bytes) -> None:
        self._seq = append_packet(self._out, payload, self._seq)
        self._transition("answered")

    def _transition(self, what: str) -> None:
        try:
            self.state = _TRANSITIONS[self.state, what]
        except KeyError:
            raise LocalProtocolError(
                f"{what!r} is not allowed in state {self.state.name}"
            ) from None

    # -- output -----------------------------------------------------------------------------

    def send(self, *responses: Response) -> None:
        """Queue the answer to the pending Login or command.

        Several responses answer a multi-statement query: every one but the last is marked
        SERVER_MORE_RESULTS_EXISTS. An Error ends the answer (later statements did not run).
        """
        if not responses:
            raise LocalProtocolError("send() needs at least one response")
        state = self.state
        if state is _AUTHENTICATING:
            if len(responses) != 1 or not isinstance(responses[0], Ok | Error):
                raise LocalProtocolError("a Login is answered with exactly one Ok or Error")
        elif state is not _RESPONDING:
            raise LocalProtocolError(f"nothing to answer in state {state.name}")
        out = self._out
        seq = self._seq
        last = len(responses) - 1
        for i, response in enumerate(responses):
            more = SERVER_MORE_RESULTS_EXISTS if i < last else 0
            if isinstance(response, ResultSet):
                encode = append_binary_result_set if self._binary else append_result_set
                seq = encode(
                    out,
                    seq,
                    response.columns,
                    response.rows,
                    response.status | more,
                    response.warnings,
                    self._deprecate_eof,
                )
                what = "result"
            elif isinstance(response, Ok):
                payload = ok_packet(
                    response.affected_rows,
                    response.last_insert_id,
                    response.status | more,
                    response.warnings,
                    response.info,
                )
                seq = append_packet(out, payload, seq)
                what = "ok"
            elif isinstance(response, Error):
                seq = append_packet(
                    out, err_packet(response.errno, response.sqlstate, response.message), seq
                )
                what = "error"
                if i < last:
                    raise LocalProtocolError("an Error must be the last response")
            elif isinstance(response, StatisticsText):
                # The one answer that is a bare string, not an OK/ERR/result packet.
                seq = append_packet(out, response.text.encode("utf-8"), seq)
                what = "result"
            else:
                seq = self._field_list(out, seq, response.columns, response.status)
                what = "result"
        self._seq = seq
        self._binary = False
        self._transition(what)

    def _field_list(
        self, out: bytearray, seq: int, columns: Sequence[ColumnLike], status: int
    ) -> int:
        # COM_FIELD_LIST: column definitions, each followed by a (here empty: 0xFB) default
        # value, then the terminator; there is no column count packet.
        for col in columns:
            seq = append_packet(out, column_definition(col) + b"\xfb", seq)
        return append_packet(out, self._eof(status), seq)

    def _eof(self, status: int) -> bytes:
        if self._deprecate_eof:
            return ok_packet(0, 0, status, 0, header=0xFE)
        return eof_packet(status)

    def data_to_send(self) -> bytes:
        """Take the bytes queued for the client (empty if none)."""
        if not self._out:
            return b""
        data = bytes(self._out)
        self._out.clear()
        return data


def refusal(errno: int, sqlstate: str, message: str) -> bytes:
    """The bytes a server sends instead of its greeting when it turns a client away.

    For example 1040 "Too many connections": an ERR packet with sequence id 0, which clients
    report as the connection error.
    """
    out = bytearray()
    append_packet(out, err_packet(errno, sqlstate, message), 0)
    return bytes(out)
