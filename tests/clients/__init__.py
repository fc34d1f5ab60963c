"""Independent clients the tests drive: Apache WSS4J (a Java program compiled by the suite)."""
