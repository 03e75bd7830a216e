import cascade as cs


@cs.resource
def db():
    raise ConnectionRefusedError("db is down")
    yield


@cs.task
def uses(db=cs.inject("db")):
    return 1


pipeline = uses()
