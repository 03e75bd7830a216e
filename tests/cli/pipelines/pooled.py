import cascade as cs


@cs.task(pools={"api": 1})
def call(i):
    return i


@cs.task
def boom(x):
    raise ValueError(f"bad {x}")


@cs.task
def ok(x):
    return x


calls = [call(i) for i in range(4)]
mixed = [ok(1), boom(2), ok(boom(3)), ok(4)]
