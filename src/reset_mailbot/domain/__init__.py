"""The pure decision core: no I/O, no framework. Everything here is a function of its inputs."""
