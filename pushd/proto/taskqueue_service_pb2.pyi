from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskQueueServiceError(_message.Message):
    __slots__ = ()
    class ErrorCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OK: _ClassVar[TaskQueueServiceError.ErrorCode]
        UNKNOWN_QUEUE: _ClassVar[TaskQueueServiceError.ErrorCode]
        TRANSIENT_ERROR: _ClassVar[TaskQueueServiceError.ErrorCode]
        INTERNAL_ERROR: _ClassVar[TaskQueueServiceError.ErrorCode]
        TASK_TOO_LARGE: _ClassVar[TaskQueueServiceError.ErrorCode]
        INVALID_TASK_NAME: _ClassVar[TaskQueueServiceError.ErrorCode]
        INVALID_QUEUE_NAME: _ClassVar[TaskQueueServiceError.ErrorCode]
        INVALID_URL: _ClassVar[TaskQueueServiceError.ErrorCode]
        INVALID_QUEUE_RATE: _ClassVar[TaskQueueServiceError.ErrorCode]
        PERMISSION_DENIED: _ClassVar[TaskQueueServiceError.ErrorCode]
        TASK_ALREADY_EXISTS: _ClassVar[TaskQueueServiceError.ErrorCode]
        TOMBSTONED_TASK: _ClassVar[TaskQueueServiceError.ErrorCode]
        INVALID_ETA: _ClassVar[TaskQueueServiceError.ErrorCode]
        INVALID_REQUEST: _ClassVar[TaskQueueServiceError.ErrorCode]
        UNKNOWN_TASK: _ClassVar[TaskQueueServiceError.ErrorCode]
        TOMBSTONED_QUEUE: _ClassVar[TaskQueueServiceError.ErrorCode]
        DUPLICATE_TASK_NAME: _ClassVar[TaskQueueServiceError.ErrorCode]
        SKIPPED: _ClassVar[TaskQueueServiceError.ErrorCode]
        TOO_MANY_TASKS: _ClassVar[TaskQueueServiceError.ErrorCode]
        INVALID_PAYLOAD: _ClassVar[TaskQueueServiceError.ErrorCode]
        INVALID_RETRY_PARAMETERS: _ClassVar[TaskQueueServiceError.ErrorCode]
        INVALID_QUEUE_MODE: _ClassVar[TaskQueueServiceError.ErrorCode]
        ACL_LOOKUP_ERROR: _ClassVar[TaskQueueServiceError.ErrorCode]
        TRANSACTIONAL_REQUEST_TOO_LARGE: _ClassVar[TaskQueueServiceError.ErrorCode]
        INCORRECT_CREATOR_NAME: _ClassVar[TaskQueueServiceError.ErrorCode]
        TASK_LEASE_EXPIRED: _ClassVar[TaskQueueServiceError.ErrorCode]
        QUEUE_PAUSED: _ClassVar[TaskQueueServiceError.ErrorCode]
        INVALID_TAG: _ClassVar[TaskQueueServiceError.ErrorCode]
        INVALID_LOGGING_CONFIG: _ClassVar[TaskQueueServiceError.ErrorCode]
        INVALID_DISPATCH_DEADLINE: _ClassVar[TaskQueueServiceError.ErrorCode]
        DATASTORE_ERROR: _ClassVar[TaskQueueServiceError.ErrorCode]
    OK: TaskQueueServiceError.ErrorCode
    UNKNOWN_QUEUE: TaskQueueServiceError.ErrorCode
    TRANSIENT_ERROR: TaskQueueServiceError.ErrorCode
    INTERNAL_ERROR: TaskQueueServiceError.ErrorCode
    TASK_TOO_LARGE: TaskQueueServiceError.ErrorCode
    INVALID_TASK_NAME: TaskQueueServiceError.ErrorCode
    INVALID_QUEUE_NAME: TaskQueueServiceError.ErrorCode
    INVALID_URL: TaskQueueServiceError.ErrorCode
    INVALID_QUEUE_RATE: TaskQueueServiceError.ErrorCode
    PERMISSION_DENIED: TaskQueueServiceError.ErrorCode
    TASK_ALREADY_EXISTS: TaskQueueServiceError.ErrorCode
    TOMBSTONED_TASK: TaskQueueServiceError.ErrorCode
    INVALID_ETA: TaskQueueServiceError.ErrorCode
    INVALID_REQUEST: TaskQueueServiceError.ErrorCode
    UNKNOWN_TASK: TaskQueueServiceError.ErrorCode
    TOMBSTONED_QUEUE: TaskQueueServiceError.ErrorCode
    DUPLICATE_TASK_NAME: TaskQueueServiceError.ErrorCode
    SKIPPED: TaskQueueServiceError.ErrorCode
    TOO_MANY_TASKS: TaskQueueServiceError.ErrorCode
    INVALID_PAYLOAD: TaskQueueServiceError.ErrorCode
    INVALID_RETRY_PARAMETERS: TaskQueueServiceError.ErrorCode
    INVALID_QUEUE_MODE: TaskQueueServiceError.ErrorCode
    ACL_LOOKUP_ERROR: TaskQueueServiceError.ErrorCode
    TRANSACTIONAL_REQUEST_TOO_LARGE: TaskQueueServiceError.ErrorCode
    INCORRECT_CREATOR_NAME: TaskQueueServiceError.ErrorCode
    TASK_LEASE_EXPIRED: TaskQueueServiceError.ErrorCode
    QUEUE_PAUSED: TaskQueueServiceError.ErrorCode
    INVALID_TAG: TaskQueueServiceError.ErrorCode
    INVALID_LOGGING_CONFIG: TaskQueueServiceError.ErrorCode
    INVALID_DISPATCH_DEADLINE: TaskQueueServiceError.ErrorCode
    DATASTORE_ERROR: TaskQueueServiceError.ErrorCode
    def __init__(self) -> None: ...

class TaskQueueRetryParameters(_message.Message):
    __slots__ = ("retry_limit", "age_limit_sec", "min_backoff_sec", "max_backoff_sec", "max_doublings")
    RETRY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    AGE_LIMIT_SEC_FIELD_NUMBER: _ClassVar[int]
    MIN_BACKOFF_SEC_FIELD_NUMBER: _ClassVar[int]
    MAX_BACKOFF_SEC_FIELD_NUMBER: _ClassVar[int]
    MAX_DOUBLINGS_FIELD_NUMBER: _ClassVar[int]
    retry_limit: int
    age_limit_sec: int
    min_backoff_sec: float
    max_backoff_sec: float
    max_doublings: int
    def __init__(self, retry_limit: _Optional[int] = ..., age_limit_sec: _Optional[int] = ..., min_backoff_sec: _Optional[float] = ..., max_backoff_sec: _Optional[float] = ..., max_doublings: _Optional[int] = ...) -> None: ...

class TaskQueueAcl(_message.Message):
    __slots__ = ("user_email", "writer_email")
    USER_EMAIL_FIELD_NUMBER: _ClassVar[int]
    WRITER_EMAIL_FIELD_NUMBER: _ClassVar[int]
    user_email: _containers.RepeatedScalarFieldContainer[bytes]
    writer_email: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, user_email: _Optional[_Iterable[bytes]] = ..., writer_email: _Optional[_Iterable[bytes]] = ...) -> None: ...

class TaskQueueHttpHeader(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: bytes
    value: bytes
    def __init__(self, key: _Optional[bytes] = ..., value: _Optional[bytes] = ...) -> None: ...

class TaskQueueMode(_message.Message):
    __slots__ = ()
    class Mode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        PUSH: _ClassVar[TaskQueueMode.Mode]
        PULL: _ClassVar[TaskQueueMode.Mode]
    PUSH: TaskQueueMode.Mode
    PULL: TaskQueueMode.Mode
    def __init__(self) -> None: ...

class TaskQueueAddRequest(_message.Message):
    __slots__ = ("queue_name", "task_name", "eta_usec", "method", "url", "header", "body", "transaction", "datastore_transaction", "app_id", "crontimetable", "description", "payload", "retry_parameters", "mode", "tag", "cron_retry_parameters", "dispatch_deadline_usec")
    class RequestMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        GET: _ClassVar[TaskQueueAddRequest.RequestMethod]
        POST: _ClassVar[TaskQueueAddRequest.RequestMethod]
        HEAD: _ClassVar[TaskQueueAddRequest.RequestMethod]
        PUT: _ClassVar[TaskQueueAddRequest.RequestMethod]
        DELETE: _ClassVar[TaskQueueAddRequest.RequestMethod]
    GET: TaskQueueAddRequest.RequestMethod
    POST: TaskQueueAddRequest.RequestMethod
    HEAD: TaskQueueAddRequest.RequestMethod
    PUT: TaskQueueAddRequest.RequestMethod
    DELETE: TaskQueueAddRequest.RequestMethod
    class Header(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: bytes
        value: bytes
        def __init__(self, key: _Optional[bytes] = ..., value: _Optional[bytes] = ...) -> None: ...
    class CronTimetable(_message.Message):
        __slots__ = ("schedule", "timezone")
        SCHEDULE_FIELD_NUMBER: _ClassVar[int]
        TIMEZONE_FIELD_NUMBER: _ClassVar[int]
        schedule: bytes
        timezone: bytes
        def __init__(self, schedule: _Optional[bytes] = ..., timezone: _Optional[bytes] = ...) -> None: ...
    QUEUE_NAME_FIELD_NUMBER: _ClassVar[int]
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    ETA_USEC_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    DATASTORE_TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    CRONTIMETABLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    RETRY_PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    CRON_RETRY_PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    DISPATCH_DEADLINE_USEC_FIELD_NUMBER: _ClassVar[int]
    queue_name: bytes
    task_name: bytes
    eta_usec: int
    method: TaskQueueAddRequest.RequestMethod
    url: bytes
    header: _containers.RepeatedCompositeFieldContainer[TaskQueueAddRequest.Header]
    body: bytes
    transaction: bytes
    datastore_transaction: bytes
    app_id: bytes
    crontimetable: TaskQueueAddRequest.CronTimetable
    description: bytes
    payload: bytes
    retry_parameters: TaskQueueRetryParameters
    mode: TaskQueueMode.Mode
    tag: bytes
    cron_retry_parameters: TaskQueueRetryParameters
    dispatch_deadline_usec: int
    def __init__(self, queue_name: _Optional[bytes] = ..., task_name: _Optional[bytes] = ..., eta_usec: _Optional[int] = ..., method: _Optional[_Union[TaskQueueAddRequest.RequestMethod, str]] = ..., url: _Optional[bytes] = ..., header: _Optional[_Iterable[_Union[TaskQueueAddRequest.Header, _Mapping]]] = ..., body: _Optional[bytes] = ..., transaction: _Optional[bytes] = ..., datastore_transaction: _Optional[bytes] = ..., app_id: _Optional[bytes] = ..., crontimetable: _Optional[_Union[TaskQueueAddRequest.CronTimetable, _Mapping]] = ..., description: _Optional[bytes] = ..., payload: _Optional[bytes] = ..., retry_parameters: _Optional[_Union[TaskQueueRetryParameters, _Mapping]] = ..., mode: _Optional[_Union[TaskQueueMode.Mode, str]] = ..., tag: _Optional[bytes] = ..., cron_retry_parameters: _Optional[_Union[TaskQueueRetryParameters, _Mapping]] = ..., dispatch_deadline_usec: _Optional[int] = ...) -> None: ...

class TaskQueueAddResponse(_message.Message):
    __slots__ = ("chosen_task_name",)
    CHOSEN_TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    chosen_task_name: bytes
    def __init__(self, chosen_task_name: _Optional[bytes] = ...) -> None: ...

class TaskQueueBulkAddRequest(_message.Message):
    __slots__ = ("add_request",)
    ADD_REQUEST_FIELD_NUMBER: _ClassVar[int]
    add_request: _containers.RepeatedCompositeFieldContainer[TaskQueueAddRequest]
    def __init__(self, add_request: _Optional[_Iterable[_Union[TaskQueueAddRequest, _Mapping]]] = ...) -> None: ...

class TaskQueueBulkAddResponse(_message.Message):
    __slots__ = ("taskresult",)
    class TaskResult(_message.Message):
        __slots__ = ("result", "chosen_task_name")
        RESULT_FIELD_NUMBER: _ClassVar[int]
        CHOSEN_TASK_NAME_FIELD_NUMBER: _ClassVar[int]
        result: TaskQueueServiceError.ErrorCode
        chosen_task_name: bytes
        def __init__(self, result: _Optional[_Union[TaskQueueServiceError.ErrorCode, str]] = ..., chosen_task_name: _Optional[bytes] = ...) -> None: ...
    TASKRESULT_FIELD_NUMBER: _ClassVar[int]
    taskresult: _containers.RepeatedCompositeFieldContainer[TaskQueueBulkAddResponse.TaskResult]
    def __init__(self, taskresult: _Optional[_Iterable[_Union[TaskQueueBulkAddResponse.TaskResult, _Mapping]]] = ...) -> None: ...

class TaskQueueDeleteRequest(_message.Message):
    __slots__ = ("queue_name", "task_name", "app_id")
    QUEUE_NAME_FIELD_NUMBER: _ClassVar[int]
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    queue_name: bytes
    task_name: _containers.RepeatedScalarFieldContainer[bytes]
    app_id: bytes
    def __init__(self, queue_name: _Optional[bytes] = ..., task_name: _Optional[_Iterable[bytes]] = ..., app_id: _Optional[bytes] = ...) -> None: ...

class TaskQueueDeleteResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: _containers.RepeatedScalarFieldContainer[TaskQueueServiceError.ErrorCode]
    def __init__(self, result: _Optional[_Iterable[_Union[TaskQueueServiceError.ErrorCode, str]]] = ...) -> None: ...

class TaskQueueForceRunRequest(_message.Message):
    __slots__ = ("app_id", "queue_name", "task_name")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_NAME_FIELD_NUMBER: _ClassVar[int]
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    app_id: bytes
    queue_name: bytes
    task_name: bytes
    def __init__(self, app_id: _Optional[bytes] = ..., queue_name: _Optional[bytes] = ..., task_name: _Optional[bytes] = ...) -> None: ...

class TaskQueueForceRunResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: TaskQueueServiceError.ErrorCode
    def __init__(self, result: _Optional[_Union[TaskQueueServiceError.ErrorCode, str]] = ...) -> None: ...

class TaskQueueFetchQueuesRequest(_message.Message):
    __slots__ = ("app_id", "max_rows")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_ROWS_FIELD_NUMBER: _ClassVar[int]
    app_id: bytes
    max_rows: int
    def __init__(self, app_id: _Optional[bytes] = ..., max_rows: _Optional[int] = ...) -> None: ...

class TaskQueueFetchQueuesResponse(_message.Message):
    __slots__ = ("queue",)
    class Queue(_message.Message):
        __slots__ = ("queue_name", "bucket_refill_per_second", "bucket_capacity", "user_specified_rate", "paused", "retry_parameters", "max_concurrent_requests", "mode", "acl", "header_override", "creator_name")
        QUEUE_NAME_FIELD_NUMBER: _ClassVar[int]
        BUCKET_REFILL_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
        BUCKET_CAPACITY_FIELD_NUMBER: _ClassVar[int]
        USER_SPECIFIED_RATE_FIELD_NUMBER: _ClassVar[int]
        PAUSED_FIELD_NUMBER: _ClassVar[int]
        RETRY_PARAMETERS_FIELD_NUMBER: _ClassVar[int]
        MAX_CONCURRENT_REQUESTS_FIELD_NUMBER: _ClassVar[int]
        MODE_FIELD_NUMBER: _ClassVar[int]
        ACL_FIELD_NUMBER: _ClassVar[int]
        HEADER_OVERRIDE_FIELD_NUMBER: _ClassVar[int]
        CREATOR_NAME_FIELD_NUMBER: _ClassVar[int]
        queue_name: bytes
        bucket_refill_per_second: float
        bucket_capacity: float
        user_specified_rate: str
        paused: bool
        retry_parameters: TaskQueueRetryParameters
        max_concurrent_requests: int
        mode: TaskQueueMode.Mode
        acl: TaskQueueAcl
        header_override: _containers.RepeatedCompositeFieldContainer[TaskQueueHttpHeader]
        creator_name: str
        def __init__(self, queue_name: _Optional[bytes] = ..., bucket_refill_per_second: _Optional[float] = ..., bucket_capacity: _Optional[float] = ..., user_specified_rate: _Optional[str] = ..., paused: _Optional[bool] = ..., retry_parameters: _Optional[_Union[TaskQueueRetryParameters, _Mapping]] = ..., max_concurrent_requests: _Optional[int] = ..., mode: _Optional[_Union[TaskQueueMode.Mode, str]] = ..., acl: _Optional[_Union[TaskQueueAcl, _Mapping]] = ..., header_override: _Optional[_Iterable[_Union[TaskQueueHttpHeader, _Mapping]]] = ..., creator_name: _Optional[str] = ...) -> None: ...
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    queue: _containers.RepeatedCompositeFieldContainer[TaskQueueFetchQueuesResponse.Queue]
    def __init__(self, queue: _Optional[_Iterable[_Union[TaskQueueFetchQueuesResponse.Queue, _Mapping]]] = ...) -> None: ...

class TaskQueueFetchQueueStatsRequest(_message.Message):
    __slots__ = ("app_id", "queue_name", "max_num_tasks")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_NAME_FIELD_NUMBER: _ClassVar[int]
    MAX_NUM_TASKS_FIELD_NUMBER: _ClassVar[int]
    app_id: bytes
    queue_name: _containers.RepeatedScalarFieldContainer[bytes]
    max_num_tasks: int
    def __init__(self, app_id: _Optional[bytes] = ..., queue_name: _Optional[_Iterable[bytes]] = ..., max_num_tasks: _Optional[int] = ...) -> None: ...

class TaskQueueScannerQueueInfo(_message.Message):
    __slots__ = ("executed_last_minute", "executed_last_hour", "sampling_duration_seconds", "requests_in_flight", "enforced_rate")
    EXECUTED_LAST_MINUTE_FIELD_NUMBER: _ClassVar[int]
    EXECUTED_LAST_HOUR_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    ENFORCED_RATE_FIELD_NUMBER: _ClassVar[int]
    executed_last_minute: int
    executed_last_hour: int
    sampling_duration_seconds: float
    requests_in_flight: int
    enforced_rate: float
    def __init__(self, executed_last_minute: _Optional[int] = ..., executed_last_hour: _Optional[int] = ..., sampling_duration_seconds: _Optional[float] = ..., requests_in_flight: _Optional[int] = ..., enforced_rate: _Optional[float] = ...) -> None: ...

class TaskQueueFetchQueueStatsResponse(_message.Message):
    __slots__ = ("queuestats",)
    class QueueStats(_message.Message):
        __slots__ = ("num_tasks", "oldest_eta_usec", "scanner_info")
        NUM_TASKS_FIELD_NUMBER: _ClassVar[int]
        OLDEST_ETA_USEC_FIELD_NUMBER: _ClassVar[int]
        SCANNER_INFO_FIELD_NUMBER: _ClassVar[int]
        num_tasks: int
        oldest_eta_usec: int
        scanner_info: TaskQueueScannerQueueInfo
        def __init__(self, num_tasks: _Optional[int] = ..., oldest_eta_usec: _Optional[int] = ..., scanner_info: _Optional[_Union[TaskQueueScannerQueueInfo, _Mapping]] = ...) -> None: ...
    QUEUESTATS_FIELD_NUMBER: _ClassVar[int]
    queuestats: _containers.RepeatedCompositeFieldContainer[TaskQueueFetchQueueStatsResponse.QueueStats]
    def __init__(self, queuestats: _Optional[_Iterable[_Union[TaskQueueFetchQueueStatsResponse.QueueStats, _Mapping]]] = ...) -> None: ...

class TaskQueuePauseQueueRequest(_message.Message):
    __slots__ = ("app_id", "queue_name", "pause")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_NAME_FIELD_NUMBER: _ClassVar[int]
    PAUSE_FIELD_NUMBER: _ClassVar[int]
    app_id: bytes
    queue_name: bytes
    pause: bool
    def __init__(self, app_id: _Optional[bytes] = ..., queue_name: _Optional[bytes] = ..., pause: _Optional[bool] = ...) -> None: ...

class TaskQueuePauseQueueResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TaskQueuePurgeQueueRequest(_message.Message):
    __slots__ = ("app_id", "queue_name")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_NAME_FIELD_NUMBER: _ClassVar[int]
    app_id: bytes
    queue_name: bytes
    def __init__(self, app_id: _Optional[bytes] = ..., queue_name: _Optional[bytes] = ...) -> None: ...

class TaskQueuePurgeQueueResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TaskQueueQueryTasksRequest(_message.Message):
    __slots__ = ("app_id", "queue_name", "start_task_name", "start_eta_usec", "start_tag", "max_rows")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_NAME_FIELD_NUMBER: _ClassVar[int]
    START_TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    START_ETA_USEC_FIELD_NUMBER: _ClassVar[int]
    START_TAG_FIELD_NUMBER: _ClassVar[int]
    MAX_ROWS_FIELD_NUMBER: _ClassVar[int]
    app_id: bytes
    queue_name: bytes
    start_task_name: bytes
    start_eta_usec: int
    start_tag: bytes
    max_rows: int
    def __init__(self, app_id: _Optional[bytes] = ..., queue_name: _Optional[bytes] = ..., start_task_name: _Optional[bytes] = ..., start_eta_usec: _Optional[int] = ..., start_tag: _Optional[bytes] = ..., max_rows: _Optional[int] = ...) -> None: ...

class TaskQueueQueryTasksResponse(_message.Message):
    __slots__ = ("task",)
    class Task(_message.Message):
        __slots__ = ("task_name", "eta_usec", "url", "method", "retry_count", "header", "body_size", "body", "creation_time_usec", "crontimetable", "runlog", "description", "payload", "retry_parameters", "first_try_usec", "tag", "execution_count", "dispatch_deadline_usec")
        class RequestMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
            __slots__ = ()
            GET: _ClassVar[TaskQueueQueryTasksResponse.Task.RequestMethod]
            POST: _ClassVar[TaskQueueQueryTasksResponse.Task.RequestMethod]
            HEAD: _ClassVar[TaskQueueQueryTasksResponse.Task.RequestMethod]
            PUT: _ClassVar[TaskQueueQueryTasksResponse.Task.RequestMethod]
            DELETE: _ClassVar[TaskQueueQueryTasksResponse.Task.RequestMethod]
        GET: TaskQueueQueryTasksResponse.Task.RequestMethod
        POST: TaskQueueQueryTasksResponse.Task.RequestMethod
        HEAD: TaskQueueQueryTasksResponse.Task.RequestMethod
        PUT: TaskQueueQueryTasksResponse.Task.RequestMethod
        DELETE: TaskQueueQueryTasksResponse.Task.RequestMethod
        class Header(_message.Message):
            __slots__ = ("key", "value")
            KEY_FIELD_NUMBER: _ClassVar[int]
            VALUE_FIELD_NUMBER: _ClassVar[int]
            key: bytes
            value: bytes
            def __init__(self, key: _Optional[bytes] = ..., value: _Optional[bytes] = ...) -> None: ...
        class CronTimetable(_message.Message):
            __slots__ = ("schedule", "timezone")
            SCHEDULE_FIELD_NUMBER: _ClassVar[int]
            TIMEZONE_FIELD_NUMBER: _ClassVar[int]
            schedule: bytes
            timezone: bytes
            def __init__(self, schedule: _Optional[bytes] = ..., timezone: _Optional[bytes] = ...) -> None: ...
        class RunLog(_message.Message):
            __slots__ = ("dispatched_usec", "lag_usec", "elapsed_usec", "response_code", "retry_reason")
            DISPATCHED_USEC_FIELD_NUMBER: _ClassVar[int]
            LAG_USEC_FIELD_NUMBER: _ClassVar[int]
            ELAPSED_USEC_FIELD_NUMBER: _ClassVar[int]
            RESPONSE_CODE_FIELD_NUMBER: _ClassVar[int]
            RETRY_REASON_FIELD_NUMBER: _ClassVar[int]
            dispatched_usec: int
            lag_usec: int
            elapsed_usec: int
            response_code: int
            retry_reason: str
            def __init__(self, dispatched_usec: _Optional[int] = ..., lag_usec: _Optional[int] = ..., elapsed_usec: _Optional[int] = ..., response_code: _Optional[int] = ..., retry_reason: _Optional[str] = ...) -> None: ...
        TASK_NAME_FIELD_NUMBER: _ClassVar[int]
        ETA_USEC_FIELD_NUMBER: _ClassVar[int]
        URL_FIELD_NUMBER: _ClassVar[int]
        METHOD_FIELD_NUMBER: _ClassVar[int]
        RETRY_COUNT_FIELD_NUMBER: _ClassVar[int]
        HEADER_FIELD_NUMBER: _ClassVar[int]
        BODY_SIZE_FIELD_NUMBER: _ClassVar[int]
        BODY_FIELD_NUMBER: _ClassVar[int]
        CREATION_TIME_USEC_FIELD_NUMBER: _ClassVar[int]
        CRONTIMETABLE_FIELD_NUMBER: _ClassVar[int]
        RUNLOG_FIELD_NUMBER: _ClassVar[int]
        DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
        PAYLOAD_FIELD_NUMBER: _ClassVar[int]
        RETRY_PARAMETERS_FIELD_NUMBER: _ClassVar[int]
        FIRST_TRY_USEC_FIELD_NUMBER: _ClassVar[int]
        TAG_FIELD_NUMBER: _ClassVar[int]
        EXECUTION_COUNT_FIELD_NUMBER: _ClassVar[int]
        DISPATCH_DEADLINE_USEC_FIELD_NUMBER: _ClassVar[int]
        task_name: bytes
        eta_usec: int
        url: bytes
        method: TaskQueueQueryTasksResponse.Task.RequestMethod
        retry_count: int
        header: _containers.RepeatedCompositeFieldContainer[TaskQueueQueryTasksResponse.Task.Header]
        body_size: int
        body: bytes
        creation_time_usec: int
        crontimetable: TaskQueueQueryTasksResponse.Task.CronTimetable
        runlog: TaskQueueQueryTasksResponse.Task.RunLog
        description: bytes
        payload: bytes
        retry_parameters: TaskQueueRetryParameters
        first_try_usec: int
        tag: bytes
        execution_count: int
        dispatch_deadline_usec: int
        def __init__(self, task_name: _Optional[bytes] = ..., eta_usec: _Optional[int] = ..., url: _Optional[bytes] = ..., method: _Optional[_Union[TaskQueueQueryTasksResponse.Task.RequestMethod, str]] = ..., retry_count: _Optional[int] = ..., header: _Optional[_Iterable[_Union[TaskQueueQueryTasksResponse.Task.Header, _Mapping]]] = ..., body_size: _Optional[int] = ..., body: _Optional[bytes] = ..., creation_time_usec: _Optional[int] = ..., crontimetable: _Optional[_Union[TaskQueueQueryTasksResponse.Task.CronTimetable, _Mapping]] = ..., runlog: _Optional[_Union[TaskQueueQueryTasksResponse.Task.RunLog, _Mapping]] = ..., description: _Optional[bytes] = ..., payload: _Optional[bytes] = ..., retry_parameters: _Optional[_Union[TaskQueueRetryParameters, _Mapping]] = ..., first_try_usec: _Optional[int] = ..., tag: _Optional[bytes] = ..., execution_count: _Optional[int] = ..., dispatch_deadline_usec: _Optional[int] = ...) -> None: ...
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: _containers.RepeatedCompositeFieldContainer[TaskQueueQueryTasksResponse.Task]
    def __init__(self, task: _Optional[_Iterable[_Union[TaskQueueQueryTasksResponse.Task, _Mapping]]] = ...) -> None: ...

class TaskQueueFetchTaskRequest(_message.Message):
    __slots__ = ("app_id", "queue_name", "task_name")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_NAME_FIELD_NUMBER: _ClassVar[int]
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    app_id: bytes
    queue_name: bytes
    task_name: bytes
    def __init__(self, app_id: _Optional[bytes] = ..., queue_name: _Optional[bytes] = ..., task_name: _Optional[bytes] = ...) -> None: ...

class TaskQueueFetchTaskResponse(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: TaskQueueQueryTasksResponse
    def __init__(self, task: _Optional[_Union[TaskQueueQueryTasksResponse, _Mapping]] = ...) -> None: ...

class TaskQueueQueryAndOwnTasksRequest(_message.Message):
    __slots__ = ("queue_name", "lease_seconds", "max_tasks", "group_by_tag", "tag")
    QUEUE_NAME_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_TASKS_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_TAG_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    queue_name: bytes
    lease_seconds: float
    max_tasks: int
    group_by_tag: bool
    tag: bytes
    def __init__(self, queue_name: _Optional[bytes] = ..., lease_seconds: _Optional[float] = ..., max_tasks: _Optional[int] = ..., group_by_tag: _Optional[bool] = ..., tag: _Optional[bytes] = ...) -> None: ...

class TaskQueueQueryAndOwnTasksResponse(_message.Message):
    __slots__ = ("task",)
    class Task(_message.Message):
        __slots__ = ("task_name", "eta_usec", "retry_count", "body", "tag")
        TASK_NAME_FIELD_NUMBER: _ClassVar[int]
        ETA_USEC_FIELD_NUMBER: _ClassVar[int]
        RETRY_COUNT_FIELD_NUMBER: _ClassVar[int]
        BODY_FIELD_NUMBER: _ClassVar[int]
        TAG_FIELD_NUMBER: _ClassVar[int]
        task_name: bytes
        eta_usec: int
        retry_count: int
        body: bytes
        tag: bytes
        def __init__(self, task_name: _Optional[bytes] = ..., eta_usec: _Optional[int] = ..., retry_count: _Optional[int] = ..., body: _Optional[bytes] = ..., tag: _Optional[bytes] = ...) -> None: ...
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: _containers.RepeatedCompositeFieldContainer[TaskQueueQueryAndOwnTasksResponse.Task]
    def __init__(self, task: _Optional[_Iterable[_Union[TaskQueueQueryAndOwnTasksResponse.Task, _Mapping]]] = ...) -> None: ...

class TaskQueueModifyTaskLeaseRequest(_message.Message):
    __slots__ = ("queue_name", "task_name", "eta_usec", "lease_seconds")
    QUEUE_NAME_FIELD_NUMBER: _ClassVar[int]
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    ETA_USEC_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    queue_name: bytes
    task_name: bytes
    eta_usec: int
    lease_seconds: float
    def __init__(self, queue_name: _Optional[bytes] = ..., task_name: _Optional[bytes] = ..., eta_usec: _Optional[int] = ..., lease_seconds: _Optional[float] = ...) -> None: ...

class TaskQueueModifyTaskLeaseResponse(_message.Message):
    __slots__ = ("updated_eta_usec",)
    UPDATED_ETA_USEC_FIELD_NUMBER: _ClassVar[int]
    updated_eta_usec: int
    def __init__(self, updated_eta_usec: _Optional[int] = ...) -> None: ...
