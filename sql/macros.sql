-- HMAC-SHA-256 (RFC 2104) inside DuckDB: sha256(opad || sha256(ipad || message)).
-- ipad/opad are the subkey XOR 0x36 / 0x5c, bound from Python into TEMP tables, never written in SQL.
create or replace temp macro plus_hmac_hex(ipad, opad, msg) as
    sha256(opad || unhex(sha256(ipad || encode(msg))));

-- A pseudonym: the first 128 bits of the HMAC, hex digits shifted to the letters a-p.
create or replace temp macro plus_pid(ipad, opad, msg) as
    translate(left(plus_hmac_hex(ipad, opad, msg), 32), '0123456789abcdef', 'abcdefghijklmnop');
