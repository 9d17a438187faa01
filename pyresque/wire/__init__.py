"""The interop contract with php-resque and Ruby Resque: key names, payloads and every JSON
record and time format on the wire, process titles."""
