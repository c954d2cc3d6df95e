"""The MySQL client/server protocol, server side, as a sans-IO core.

``packets`` (framing, length-encoded values), ``handshake`` (greeting, handshake response, auth
switch), ``auth`` (mysql_native_password), ``results`` (OK/ERR/EOF, column definitions, text
rows), ``events`` and ``connection`` (the state machine a server shell drives).
"""
