import cascade as cs


@cs.task
def parse(name):
    return len(name)


@cs.task(dynamic=True)
def fan(names):
    return [parse(n) for n in names]


@cs.task
def total(xs):
    return sum(xs)


@cs.task
def boom(x):
    raise ValueError("no")


pipeline = total(fan(["a", "bb", "ccc"]))
broken = [total(fan(["a"])), boom(1).with_fallback(5)]
